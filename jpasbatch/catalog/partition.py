"""HATS partitioning of validated rows: one read, one sort and one write per pixel.

hats-import's pipeline (the ``"hats-import"`` partitioner of
:func:`jpasbatch.catalog.ingest.ingest`) reads its inputs twice (mapping, then
splitting), writes every row again into a shard per (input chunk, pixel), and
reads the shards back to sort and write each pixel; at 1e6 rows on 2 cores its
partitioning took 54 s of a 64 s ingest, most of it the final write at zstd
level 15 and the shard round trip. Here validation has already done the
splitting's work: every kept chunk is written sorted by ``_healpix_29``
(:func:`sort_by_spatial_index`), so a pixel's rows are one contiguous slice of
each chunk file. Partitioning is then

1. **binning**: the ``_healpix_29`` column of the kept files (8 bytes a row)
   gives the row-count histogram at ``highest_order``; hats' own
   ``generate_alignment``, with the arguments hats-import gives it, picks the
   destination pixels, so the pixels are hats-import's;
2. **one Dask task per pixel**: read its slice of each kept file, sort by
   ``(_healpix_29, OBJECT_ID)`` as hats-import does, write the pixel file
   (atomically; a pixel written with the expected rows is not redone on resume);
3. **finishing**: ``partition_info.csv``, ``_metadata``, point map and sky map,
   ``hats.properties``, with hats' writers and hats-import's own properties.

Memory: the driver holds the ``_healpix_29`` column (8 bytes a row); a worker
holds one pixel (at most ``max_rows`` rows), as in hats-import's reduce.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jpasbatch.catalog.schemas import HEALPIX_COLUMN
from jpasbatch.core import atomic
from jpasbatch.core.errors import JpasBatchError
from jpasbatch.distribute.dask import gather

#: HEALPix order of ``_healpix_29``.
SPATIAL_ORDER = 29
#: Rows per row group of the kept (intermediate) files: a pixel's slice reads at
#: most two row groups it does not need from each file.
KEPT_ROW_GROUP = 16_384
#: zstd level of the catalogue's pixel files (hats' default is 15). Measured on
#: 980k rows x 129 columns (2 loaded cores): level 15 took 56 s to write, level 3
#: 3.2 s and level 1 2.7 s, for files 4% larger (406, 421 and 423 MB).
ZSTD_LEVEL = 1
#: Sort order of every pixel file, hats-import's: spatial index, then the id.
SORT = [(HEALPIX_COLUMN, "ascending"), ("OBJECT_ID", "ascending")]


def sort_by_spatial_index(table: pa.Table, ra: str, dec: str) -> pa.Table:
    """``table`` with a ``_healpix_29`` column (hats' spatial index), sorted by it.

    Rows with equal index keep their order (a stable sort).
    """
    from hats.pixel_math.spatial_index import compute_spatial_index

    if table.num_rows == 0:
        return table.append_column(HEALPIX_COLUMN, pa.array([], pa.int64()))
    index = compute_spatial_index(
        table.column(ra).to_numpy().astype(np.float64),
        table.column(dec).to_numpy().astype(np.float64),
    )
    order = np.argsort(index, kind="stable")
    return _take(table.append_column(HEALPIX_COLUMN, pa.array(index)), order)


def write_kept(table: pa.Table, path: Path) -> None:
    """Write a kept chunk for partitioning, atomically: fast to write and read back.

    Uncompressed and without dictionaries (the data are floats; both cost more
    time than they save on a file read once), in small row groups so that a
    pixel's slice reads little more than itself.
    """
    with atomic.replacing(path) as tmp:
        pq.write_table(
            table, tmp, compression="none", use_dictionary=False, row_group_size=KEPT_ROW_GROUP
        )


def destination_pixels(histogram: np.ndarray, highest_order: int, max_rows: int) -> list[tuple]:
    """hats-import's destination pixels ``(order, pixel, rows)`` for a row-count histogram.

    Parameters
    ----------
    histogram
        Rows per pixel at ``highest_order`` (nested numbering).
    highest_order
        Deepest order a pixel may have.
    max_rows
        Pixel threshold.

    Notes
    -----
    hats-import calls ``generate_alignment`` with ``use_lower_order``: the
    alignment is then built at the shallowest order whose fullest pixel is under
    the threshold, from the sums at that order and above it. Summing the
    histogram to that order first gives the same pixels, without the pure-Python
    pass over the 12.6 million pixels of order 10 (4 s on this machine).
    """
    from hats.pixel_math.partition_stats import generate_alignment

    effective, hist = highest_order, histogram
    for order in range(highest_order - 1, 0, -1):  # hats: down to lowest_order + 1
        coarser = hist.reshape(-1, 4).sum(axis=1)
        if coarser.max() > max_rows:
            break
        effective, hist = order, coarser
    alignment = generate_alignment(
        hist,
        highest_order=effective,
        lowest_order=0,
        threshold=max_rows,
        drop_empty_siblings=True,
        use_lower_order=True,
    )
    pixels = {tuple(int(v) for v in a) for a in alignment if a is not None}
    return sorted(p for p in pixels if p[2] > 0)


def pixel_range(order: int, pixel: int) -> tuple[int, int]:
    """The ``_healpix_29`` values ``[lo, hi)`` inside a pixel (nested numbering)."""
    shift = 2 * (SPATIAL_ORDER - order)
    return pixel << shift, (pixel + 1) << shift


def write_pixel(
    slices: list[tuple[str, int, int]],
    destination: str,
    schema: pa.Schema,
    rows: int,
    write_kwargs: dict,
) -> int:
    """Gather one pixel's rows from the kept files, sort them and write the pixel file.

    Parameters
    ----------
    slices
        ``(kept file, first row, end row)`` of each file holding rows of the pixel.
    destination
        The pixel's Parquet file.
    schema
        The catalogue's schema (``_healpix_29`` first, then OBSERVED).
    rows
        Rows the histogram counted in the pixel.
    write_kwargs
        ``pyarrow.parquet.ParquetWriter`` options (hats' defaults, our zstd level).

    Returns
    -------
    int
        Rows written.
    """
    dest = Path(destination)
    if dest.exists() and pq.read_metadata(dest).num_rows == rows:
        return rows  # written by an interrupted run
    parts = [_read_slice(Path(p), start, stop, schema.names) for p, start, stop in slices]
    table = pa.concat_tables(parts).select(schema.names).cast(schema)
    if table.num_rows != rows:
        raise JpasBatchError(
            f"pixel file {dest}: {table.num_rows} rows gathered, the histogram counted {rows}"
        )
    table = _take(table, pc.sort_indices(table, SORT).to_numpy())
    dest.parent.mkdir(parents=True, exist_ok=True)
    kwargs = dict(write_kwargs, sorting_columns=pq.SortingColumn.from_ordering(schema, SORT))
    with atomic.replacing(dest) as tmp:
        with pq.ParquetWriter(tmp, schema, **kwargs) as writer:
            writer.write_table(table)
    return table.num_rows


def _take(table: pa.Table, order: np.ndarray) -> pa.Table:
    """``table.take(order)``, through numpy for columns without nulls.

    Arrow's take over a table of several chunks (one per kept file) was 3-8x
    slower than numpy's gather here; columns with nulls keep Arrow's, so that a
    null stays a null.
    """
    columns = []
    for col in table.columns:
        numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
        if col.null_count == 0 and numeric:
            values = np.concatenate([c.to_numpy() for c in col.chunks])
            columns.append(pa.array(values[order], type=col.type))
        else:
            columns.append(pc.take(col, order))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _read_slice(path: Path, start: int, stop: int, columns: list[str]) -> pa.Table:
    """Rows ``[start, stop)`` of a Parquet file, reading only the row groups they are in."""
    f = pq.ParquetFile(path)
    ends = np.cumsum([f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)])
    first = int(np.searchsorted(ends, start, side="right"))
    last = int(np.searchsorted(ends, stop - 1, side="right"))
    offset = int(ends[first - 1]) if first else 0
    table = f.read_row_groups(list(range(first, last + 1)), columns=columns)
    return table.slice(start - offset, stop - start)


def partition(
    kept_files: list[Path],
    args,
    schema: pa.Schema,
    client,
    progress: bool = False,
) -> int:
    """Write the HATS catalogue ``args.catalog_path`` from sorted kept files.

    Parameters
    ----------
    kept_files
        Kept chunks, each sorted by ``_healpix_29`` (:func:`sort_by_spatial_index`).
    args
        The ``hats_import`` ``ImportArguments`` hats-import would run with: its
        threshold, orders, properties and write options are used as they are.
    schema
        Schema of the pixel files.
    client
        Dask client; one task per pixel.
    progress
        Show a progress bar.

    Returns
    -------
    int
        Rows written.
    """
    from hats.io import paths
    from hats.io.file_io import get_parquet_write_table_kwargs
    from hats.pixel_math import healpix_shim as hp
    from hats.pixel_math.healpix_pixel import HealpixPixel

    order = args.mapping_healpix_order
    index = [pq.read_table(p, columns=[HEALPIX_COLUMN]).column(0).to_numpy() for p in kept_files]
    # one bincount: each over the 12.6 million pixels of order 10 costs ~0.15 s
    shift = 2 * (SPATIAL_ORDER - order)
    histogram = np.bincount(np.concatenate(index) >> shift, minlength=hp.order2npix(order))
    total = int(histogram.sum())
    pixels = destination_pixels(histogram, order, args.pixel_threshold)

    kwargs = get_parquet_write_table_kwargs(schema, write_table_kwargs=args.write_table_kwargs)
    kwargs.pop("row_group_size", None)  # as hats-import: a ParquetWriter takes no such option
    futures = []
    for p_order, p_pixel, rows in pixels:
        lo, hi = pixel_range(p_order, p_pixel)
        slices = []
        for path, values in zip(kept_files, index, strict=True):
            start, stop = np.searchsorted(values, [lo, hi])
            if stop > start:
                slices.append((str(path), int(start), int(stop)))
        dest = paths.new_pixel_catalog_file(
            args.catalog_path, HealpixPixel(p_order, p_pixel), npix_suffix=args.npix_suffix
        )
        futures.append(client.submit(write_pixel, slices, str(dest), schema, rows, kwargs,
                                     pure=False))  # fmt: skip
    written = sum(gather(futures, progress, "partition", unit="pixel"))
    if written != total:
        raise JpasBatchError(f"{written} rows written to pixels, {total} kept")
    _finish(args, pixels, histogram, total)
    return written


def _finish(args, pixels: list[tuple], histogram: np.ndarray, total: int) -> None:
    """The catalogue-level files, as hats-import's finishing stage writes them."""
    from hats.catalog import PartitionInfo
    from hats.io import file_io, paths
    from hats.io.parquet_metadata import write_parquet_metadata
    from hats.io.skymap import write_skymap
    from hats.pixel_math.healpix_pixel import HealpixPixel

    info = PartitionInfo.from_healpix([HealpixPixel(o, p) for o, p, _ in pixels])
    info.write_to_file(paths.get_partition_info_pointer(args.catalog_path))
    rows = write_parquet_metadata(
        args.catalog_path,
        create_thumbnail=args.create_thumbnail,
        thumbnail_threshold=args.pixel_threshold,
        create_metadata=args.create_metadata,
        create_per_partition_stats=args.create_per_partition_stats,
    )
    if rows != total:
        raise JpasBatchError(f"{rows} rows in the pixel files' metadata, {total} kept")
    file_io.write_fits_image(histogram, paths.get_point_map_file_pointer(args.catalog_path))
    write_skymap(histogram=histogram, catalog_dir=args.catalog_path, orders=args.skymap_alt_orders)
    properties = args.to_table_properties(
        total, info.get_highest_order(), info.calculate_fractional_coverage()
    )
    properties.to_properties_file(args.catalog_path)
