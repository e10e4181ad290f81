"""HATS margin caches: the rows near each partition's edge, for complete LSDB cross-matches.

A cross-match in LSDB pairs each left partition with the right catalogue's
partitions; a right object just across a pixel edge is seen only through the
right catalogue's margin cache (the rows within ``margin_threshold`` of each
pixel, stored with the neighbouring pixel). Without one, LSDB warns "Results
may be incomplete" and misses those pairs.

Ingested catalogues and VACs get one, written by hats-import's margin pipeline
into ``<catalogue>/margin`` (a HATS margin catalogue of its own). Open a
catalogue with it::

    lsdb.open_catalog(path, margin_cache=path / "margin")

or :func:`open_catalog`. Cross-matches up to ``margin_threshold`` arcsec
(:data:`MARGIN_ARCSEC` by default; ``hats.properties`` of the margin says it)
are then complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from jpasbatch.core.progress import on_terminal

#: The margin catalogue's folder inside its catalogue.
MARGIN = "margin"
#: Default margin width: cross-matches up to this radius are complete (J-PAS
#: cross-identifications use 1-3 arcsec).
MARGIN_ARCSEC = 10.0


def write_margin(
    catalog: str | Path, client, *, arcsec: float = MARGIN_ARCSEC, progress: bool = False
) -> Path:
    """Write (or rewrite) the margin cache of the HATS catalogue ``catalog``.

    Parameters
    ----------
    catalog
        HATS catalogue folder (with a ``_healpix_29`` column, as hats-import and
        the VAC write).
    client
        Dask client the pipeline runs on.
    arcsec
        Margin width. Where the catalogue's deepest partitions are finer than the
        HEALPix order this width needs, the margin is one order deeper than they
        are, and narrower (its ``hats.properties`` says how wide).
    progress
        Show hats-import's progress bars.

    Returns
    -------
    Path
        The margin catalogue (``catalog/margin``).
    """
    import hats
    from hats.pixel_math import healpix_shim as hp
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    catalog = Path(catalog)
    out = catalog / MARGIN
    # a margin of an earlier run (resumed VAC) describes other rows
    shutil.rmtree(out, ignore_errors=True)
    highest = int(hats.read_hats(catalog).partition_info.get_highest_order())
    width = {"margin_threshold": arcsec}
    if int(hp.margin2order(arcsec / 60.0)) <= highest:
        width = {"margin_order": highest + 1}
    args = MarginCacheArguments(
        input_catalog_path=str(catalog),
        output_path=str(catalog),
        output_artifact_name=MARGIN,
        progress_bar=on_terminal(progress),  # no \r redraws in log files
        simple_progress_bar=True,
        **width,
    )
    pipeline_with_client(args, client)
    return out


def open_catalog(path: str | Path, **kwargs):
    """``lsdb.open_catalog`` of ``path`` with its margin cache, where it has one."""
    import lsdb

    path = Path(path)
    margin = path / MARGIN
    if (margin / "hats.properties").exists():
        kwargs.setdefault("margin_cache", margin)
    return lsdb.open_catalog(path, **kwargs)
