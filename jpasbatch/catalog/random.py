"""Random catalogues in the observed schema, for tests and benchmarks.

Not a survey emulator (that is :mod:`jpasbatch.simulate`): positions uniform on a
sky patch, fluxes log-normal, relative errors growing as fluxes fall, and a
controllable sprinkling of the defects ingestion must reject.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jpasbatch.catalog.schemas import BANDS, OBSERVED


def random_catalogue(
    n: int,
    *,
    seed: int = 0,
    tile_id: int = 2241,
    first_number: int = 1,
    ra: tuple[float, float] = (214.0, 215.5),
    dec: tuple[float, float] = (52.0, 53.5),
    bad_fraction: float = 0.0,
) -> pa.Table:
    """``n`` rows conforming to :data:`OBSERVED`.

    Parameters
    ----------
    n
        Number of rows.
    seed
        Random seed (same seed, same table).
    tile_id, first_number
        Ids are ``tile_id * 1e6 + number`` with consecutive numbers.
    ra, dec
        Degrees; positions are uniform on the sphere within these ranges.
    bad_fraction
        Fraction of rows given FLAGS != 0, and as many again with too few bands.
    """
    rng = np.random.default_rng(seed)
    number = np.arange(first_number, first_number + n, dtype=np.int32)
    sin_dec = rng.uniform(*np.sin(np.radians(dec)), n)
    nb = len(BANDS)
    flux = (10 ** rng.normal(-17.0, 0.5, (n, 1)) * rng.lognormal(0, 0.2, (n, nb))).astype(
        np.float32
    )
    relerr = (0.02 * (1e-17 / flux) ** 0.5).astype(np.float32)
    flags = np.zeros(n, np.int32)
    bad = rng.random(n)
    flags[bad < bad_fraction] = 2
    few = (bad >= bad_fraction) & (bad < 2 * bad_fraction)
    flux[few, :20] = np.nan
    columns = {
        "OBJECT_ID": tile_id * 1_000_000 + number.astype(np.int64),
        "TILE_ID": np.full(n, tile_id, np.int32),
        "NUMBER": number,
        "ALPHA_J2000": rng.uniform(*ra, n),
        "DELTA_J2000": np.degrees(np.arcsin(sin_dec)),
        "FLAGS": flags,
        "MASK_FLAGS": np.zeros(n, np.int32),
        "CLASS_STAR": rng.random(n).astype(np.float32),
    }
    columns |= {f"FLUX_{b}": flux[:, k] for k, b in enumerate(BANDS)}
    columns |= {f"FLUX_RELERR_{b}": relerr[:, k] for k, b in enumerate(BANDS)}
    return pa.table(columns, schema=OBSERVED)
