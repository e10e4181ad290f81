"""The quickstart run by ``make demo``: J-PAS photometry of the bundled templates.

Stars at rest, galaxies at a spread of low redshifts, quasars at redshifts where
their templates cover the J-PAS range (with Inoue+2014 IGM absorption), each
scaled to rSDSS = 20 AB, observed through the 60 bands and written to Parquet,
with the filter curves and the spectra-with-photometry as figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jpasbatch.physics.filters import jpas
from jpasbatch.physics.igm import igm_transmission
from jpasbatch.physics.photometry import SyntheticPhotometry
from jpasbatch.physics.plots import plot_filters, plot_photospectra
from jpasbatch.physics.templates import bundled_demo_set

#: Redshift of each demo template, by object type (galaxies get a spread).
QSO_REDSHIFTS = {"QSO-LOZ": 1.2, "QSO-HIZ": 3.1, "QSO-None": 0.6}
R_MAG = 20.0


def run_demo(out: str | Path) -> dict[str, Path]:
    """Run the quickstart into ``out`` and return what was written.

    Returns
    -------
    dict
        ``filters``, ``photometry`` and ``photospectra`` paths.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lib = bundled_demo_set()
    sp = SyntheticPhotometry()
    r_index = sp.bands.index("rSDSS")
    galaxies = np.flatnonzero(lib.labels["objtype"] == "GALAXY")
    z = np.zeros(len(lib))
    z[galaxies] = np.linspace(0.05, 0.6, galaxies.size)
    for i, subtype in enumerate(lib.labels["subtype"]):
        z[i] = QSO_REDSHIFTS.get(subtype, z[i])

    rows, obs_flux, band_flux = [], [], []
    obs_grid = np.arange(3000.0, 11000.0, 5.0)
    for i in range(len(lib)):
        good = np.isfinite(lib.flux[i])
        wave, flux = lib.wavelength[good], lib.flux[i, good]
        if z[i] > 0:  # the IGM only absorbs light from behind it
            flux = flux * igm_transmission(wave * (1 + z[i]), z[i])
        res = sp(wave, flux[None], z=z[i])
        scale = 10 ** (-0.4 * (R_MAG - res.mag[0, r_index]))
        rows.append(
            (res.flux[0] * scale, res.mag[0] + (R_MAG - res.mag[0, r_index]), res.covered[0])
        )
        obs_flux.append(
            np.interp(obs_grid, wave * (1 + z[i]), flux * scale / (1 + z[i]), np.nan, np.nan)
        )
        band_flux.append(res.flux[0] * scale)

    columns: dict[str, object] = {
        "ID": lib.labels["id"].tolist(),
        "OBJTYPE": lib.labels["objtype"].tolist(),
        "Z": z,
    }
    for j, band in enumerate(sp.bands):
        columns[f"FLUX_{band}"] = np.array([r[0][j] for r in rows])
        columns[f"MAG_{band}"] = np.array([r[1][j] for r in rows])
        columns[f"COVERED_{band}"] = np.array([r[2][j] for r in rows])
    table = pa.table(columns)
    outputs = {
        "filters": plot_filters(jpas(), out / "filters.png"),
        "photometry": out / "templates_photometry.parquet",
    }
    pq.write_table(table, outputs["photometry"])
    pivots = np.array([b.pivot_wavelength for b in sp.system])
    pick = [
        int(np.flatnonzero(lib.labels["objtype"] == t)[k])
        for t, k in (("STAR", 4), ("GALAXY", 3), ("QSO", 1))
    ]
    outputs["photospectra"] = plot_photospectra(
        obs_grid,
        np.array(obs_flux)[pick],
        [f"{lib.labels['id'][i]}  z={z[i]:.2f}" for i in pick],
        pivots,
        np.array(band_flux)[pick],
        out / "photospectra.png",
    )
    return outputs
