"""Tiny emulated spectra and small survey files for the spectral-pipeline tests."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from jpasbatch.spectra import store
from jpasbatch.spectra.emulate import EmulateConfig, draw_targets, observe
from jpasbatch.spectra.grid import COMMON_GRID

#: Tiny networks: the tests check plumbing and numbers, not accuracy.
TINY = {
    "members": 3,
    "classifier_channels": [4, 4, 8],
    "classifier_hidden": 8,
    "regressor_channels": [4, 4, 8],
    "regressor_hidden": 8,
    "epochs": 2,
    "batch_size": 16,
    "fnet_width": 0.1,
    "fnet_bin": 8,
    "fnet_kernel_scale": 8.0,
    "fnet_epochs": 1,
    "fnet_batch_size": 8,
    "threads": 1,
}


@pytest.fixture
def tiny() -> dict:
    """SpectraTrainSpec fields of tiny networks and short runs."""
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_emulated(tmp_path_factory) -> Path:
    """30 spectra per class in two partitions (emulated in process, no Dask)."""
    out = tmp_path_factory.mktemp("spectra") / "emulated"
    config = EmulateConfig(n_per_class=30, seed=3)
    targets = draw_targets(config)
    for k, s in enumerate(range(0, len(targets), 45)):
        index, flux, ivar, good = observe(targets.iloc[s : s + 45], 100 + k, config)
        store.write_partition(out, store.partition_name(k), index, flux, ivar, good)
    store.write_summary(out, {"grid": COMMON_GRID.to_dict(), "rows": len(targets)})
    return out


def write_sdss_file(
    path: Path, flux: np.ndarray, loglam: np.ndarray, ivar: np.ndarray, and_mask: np.ndarray,
    z: float = 0.5, cls: str = "GALAXY",
) -> Path:  # fmt: skip
    """An SDSS spec-lite layout: primary header, COADD table (1e-17 units), SPECOBJ table."""
    primary = fits.PrimaryHDU()
    primary.header.update(
        {"PLATEID": 266, "MJD": 51602, "FIBERID": zlib.crc32(path.name.encode()) % 999}
    )
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="flux", array=flux.astype(np.float32), format="E"),
            fits.Column(name="loglam", array=loglam.astype(np.float32), format="E"),
            fits.Column(name="ivar", array=ivar.astype(np.float32), format="E"),
            fits.Column(name="and_mask", array=and_mask.astype(np.int32), format="J"),
        ],
        name="COADD",
    )
    specobj = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="Z", array=np.array([z], np.float32), format="E"),
            fits.Column(name="CLASS", array=np.array([cls]), format="8A"),
        ],
        name="SPECOBJ",
    )
    fits.HDUList([primary, coadd, specobj]).writeto(path)
    return path


@pytest.fixture(scope="session")
def sdss_files(tiny_emulated, tmp_path_factory) -> list[Path]:
    """Six emulated spectra written as SDSS spec-lite files (BOSS coverage, native grid)."""
    d = tmp_path_factory.mktemp("sdss")
    st = store.SpectraStore(tiny_emulated)
    flux, ivar, good = st.arrays(np.arange(6))
    paths = []
    for i in range(6):
        keep = COMMON_GRID.wavelength < 10300  # SDSS files stop before the grid does
        row = st.index.iloc[i]
        paths.append(
            write_sdss_file(
                d / f"spec-{i}.fits",
                flux[i][keep],
                COMMON_GRID.loglam[keep],
                ivar[i][keep],
                (~good[i][keep]).astype(np.int32) * 4,
                z=float(row["Z"]),
                cls=str(row["CLASS"]),
            )
        )
    return paths
