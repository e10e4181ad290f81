"""Plain tables of one spectrum: CSV, ASCII, ECSV, FITS tables, Parquet (:func:`read_table`)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
from astropy.io import fits

from jpasbatch.core.errors import InputError
from jpasbatch.spectra.io.files import (
    FITS_MAGIC,
    PARQUET_MAGIC,
    TABLE_FORMATS,
    PathLike,
    check_file,
    file_stem,
    is_gzip,
    read_bytes,
    read_head,
)
from jpasbatch.spectra.io.fits import hdu_data, hdu_names, open_fits
from jpasbatch.spectra.io.options import ReadOptions
from jpasbatch.spectra.io.validate import as_float, check_pixels, check_wavelength
from jpasbatch.spectra.spectrum import Spectrum
from jpasbatch.spectra.units import (
    error_scale,
    flux_scale,
    wavelength_to_angstrom,
)

#: Accepted (lower-case) column names of plain tables, in order of preference.
WAVELENGTH_NAMES = ("wavelength", "wave", "lambda", "lam")
FLUX_NAMES = ("flux", "flux_lambda", "f_lambda", "flam")


IVAR_NAMES = ("ivar", "inverse_variance")
ERROR_NAMES = ("error", "err", "sigma", "flux_error", "flux_err")


# "# flux_unit: Jy", "# unit = 1e-17 erg/s/cm2/A", "# wavelength unit: nm"
_UNIT_COMMENT = re.compile(r"^(?:(\w+?)[ _])?unit\s*[:=]\s*(.+)$", re.IGNORECASE)


def read_table(path: PathLike, options: ReadOptions | None = None) -> list[Spectrum]:
    """Read a plain (wavelength, flux[, ivar/error]) table.

    Parameters
    ----------
    path
        CSV, whitespace-separated ASCII (``#`` comments), ECSV, FITS table or
        Parquet file, optionally gzipped.
    options
        ``flux_unit`` for files that state no unit; ``model_spectra`` to refuse
        negative fluxes (template libraries).

    Returns
    -------
    list of Spectrum
        One spectrum, id = file stem, flux in erg s-1 cm-2 A-1 and wavelength
        in Angstrom, converted from the units the file states.

    Raises
    ------
    InputError
        If the file is missing, empty, not a known table, lacks a column, states
        a unit that is not a wavelength / spectral flux density, or fails
        validation. Negative fluxes are kept (noise) unless ``model_spectra``.

    Notes
    -----
    Columns are matched case-insensitively: wavelength from
    ``wavelength, wave, lambda, lam``; flux from
    ``flux, flux_lambda, f_lambda, flam``; optional noise from
    ``ivar, inverse_variance`` or a 1-sigma ``error, err, sigma, flux_error,
    flux_err`` (converted to ``ivar = 1/error**2``; an error of 0 carries no
    usable weight and gives ``ivar = 0``). Pixels with ``ivar == 0`` are
    masked. An ASCII file without a header line uses its first two columns as
    wavelength and flux (further columns are ignored), unless the last comment
    line just before the data names the columns (``# wavelength flux``).

    Units, in order: the column's own (FITS ``TUNIT``, Parquet/Arrow field
    metadata ``unit``, ECSV header, or a comment ``# flux_unit: Jy`` /
    ``# wavelength_unit: nm`` / ``# unit: ...`` for the flux), then a FITS
    ``BUNIT`` for the flux, then ``options.flux_unit`` (flux) and Angstrom
    (wavelength). Errors and ivar without a unit of their own follow the flux.
    """
    return read_table_checked(check_file(path), options or ReadOptions())


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    """The first of ``columns`` (any case) whose name is in ``names``, by preference."""
    lower = {c.strip().lower(): c for c in reversed(columns)}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def read_table_checked(path: Path, options: ReadOptions) -> list[Spectrum]:
    head = read_head(path)
    if head.startswith(FITS_MAGIC):
        with open_fits(path) as hdul:
            return fits_table(hdul, path, options)
    if head.startswith(PARQUET_MAGIC):
        return _parquet_table(path, options)
    return _text_table(path, options)


def _table_spectrum(
    path: Path,
    columns: dict[str, np.ndarray],
    location: str,
    options: ReadOptions,
    units: dict[str, str] | None = None,
    flux_unit: str | None = None,
) -> list[Spectrum]:
    """Build and validate the spectrum from named columns of any table format.

    ``columns`` maps the file's column names to values, ``units`` some of them
    to the unit the file states; ``flux_unit`` is a file-wide flux unit (FITS
    ``BUNIT``); ``location`` prefixes column names in errors (e.g. the FITS HDU).
    """
    units = {k: v for k, v in (units or {}).items() if v and v.strip()}
    names = list(columns)
    wcol = _pick(names, WAVELENGTH_NAMES)
    fcol = _pick(names, FLUX_NAMES)
    for found, kind, accepted in (
        (wcol, "wavelength", WAVELENGTH_NAMES),
        (fcol, "flux", FLUX_NAMES),
    ):
        if found is None:
            raise InputError(
                f"missing {kind} column: none of {list(accepted)} (any case) among the "
                f"columns {names}",
                path=path,
                column=f"{location}{kind}",
            )
    n_rows = len(columns[wcol])
    if n_rows == 0:
        raise InputError("table has no data rows", path=path, column=location.rstrip(".") or None)
    wave = as_float(columns[wcol], path, f"{location}{wcol}")
    wave = wavelength_to_angstrom(wave, units.get(wcol), path, f"{location}{wcol}")
    flux = as_float(columns[fcol], path, f"{location}{fcol}")
    check_wavelength(wave, path, f"{location}{wcol}")
    unit = units.get(fcol) or flux_unit or options.flux_unit
    scale = flux_scale(wave, unit, path, f"{location}{fcol}")
    ivar = None
    ivar_label = None
    if (icol := _pick(names, IVAR_NAMES)) is not None:
        ivar_label = f"{location}{icol}"
        ivar = as_float(columns[icol], path, ivar_label)
        ivar = ivar * error_scale(
            wave, scale, units.get(icol), inverse_variance=True, path=path, column=ivar_label
        )
    elif (ecol := _pick(names, ERROR_NAMES)) is not None:
        ivar_label = f"{location}{ecol}"
        error = as_float(columns[ecol], path, ivar_label)
        bad = np.flatnonzero(error < 0)
        if bad.size:
            raise InputError(
                f"negative uncertainty ({error[bad[0]]:g}) at row {bad[0]}",
                path=path,
                column=ivar_label,
                row=int(bad[0]),
            )
        error = error * error_scale(
            wave, scale, units.get(ecol), inverse_variance=False, path=path, column=ivar_label
        )
        # An error of 0 (or inf) carries no usable weight: ivar 0, pixel masked.
        with np.errstate(divide="ignore", invalid="ignore"):
            ivar = np.where((error > 0) & np.isfinite(error), 1.0 / error**2, 0.0)
        ivar[np.isnan(error)] = np.nan
    flux = flux * scale
    mask = None if ivar is None else ivar == 0
    check_pixels(
        wave,
        flux,
        ivar,
        mask,
        path,
        flux_column=f"{location}{fcol}",
        ivar_column=ivar_label,
        model=options.model_spectra,
    )
    return [
        Spectrum(
            id=file_stem(path),
            wavelength=wave,
            flux=flux,
            ivar=ivar,
            mask=mask,
            meta={"source": str(path)},
        )
    ]


def fits_table(hdul: fits.HDUList, path: Path, options: ReadOptions) -> list[Spectrum]:
    """The first table HDU that has wavelength and flux columns (else the first table)."""
    tables = [h for h in hdul if isinstance(h, fits.BinTableHDU | fits.TableHDU)]
    if not tables:
        raise InputError(
            f"FITS file has no table HDU (HDUs {hdu_names(hdul)}); expected an SDSS COADD, "
            "a DESI coadd or a table with wavelength and flux columns",
            path=path,
        )
    chosen = tables[0]
    for hdu in tables:
        names = hdu.columns.names
        if _pick(names, WAVELENGTH_NAMES) and _pick(names, FLUX_NAMES):
            chosen = hdu
            break
    data = hdu_data(chosen, path)
    names = chosen.columns.names
    if data is None or len(data) == 0:
        columns = {name: np.zeros(0) for name in names}
    else:
        columns = {name: np.asarray(data[name]) for name in names}
    units = {c.name: c.unit for c in chosen.columns if c.unit}
    bunit = chosen.header.get("BUNIT") or hdul[0].header.get("BUNIT")
    return _table_spectrum(path, columns, f"{chosen.name or 'HDU1'}.", options, units, bunit)


def _parquet_table(path: Path, options: ReadOptions) -> list[Spectrum]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = io.BytesIO(read_bytes(path)) if is_gzip(path) else path
    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"not a readable Parquet file, corrupt or truncated ({exc})", path=path
        ) from exc
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        try:
            columns[name] = column.to_numpy()
        except (pa.ArrowException, ValueError, TypeError):
            # Nested/odd types: leave them to the numeric check if picked.
            columns[name] = np.asarray(column.to_pylist(), dtype=object)
    units = {
        f.name: f.metadata[b"unit"].decode()
        for f in table.schema
        if f.metadata and b"unit" in f.metadata
    }
    # astropy's Table.write(format="parquet") keeps units in its YAML header
    astropy_yaml = (table.schema.metadata or {}).get(b"table_meta_yaml")
    if astropy_yaml:
        units = _ecsv_units(astropy_yaml.decode().splitlines(), path) | units
    return _table_spectrum(path, columns, "", options, units)


def _ecsv_units(lines: list[str], path: Path) -> dict[str, str]:
    """Column units from an ECSV / astropy YAML header (lines without the ``# ``)."""
    from astropy.table.meta import get_header_from_yaml

    try:
        header = get_header_from_yaml(lines)
    except Exception as exc:  # astropy raises several YAML error types
        raise InputError(f"the ECSV/YAML table header is not readable ({exc})", path=path) from None
    return {c["name"]: str(c["unit"]) for c in header.get("datatype", []) if c.get("unit")}


def _text_table(path: Path, options: ReadOptions) -> list[Spectrum]:
    raw = read_bytes(path)
    if b"\x00" in raw[:65536]:
        raise InputError(
            f"not a FITS file or a recognised table (binary content); expected {TABLE_FORMATS}",
            path=path,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not a FITS file or a recognised table (not UTF-8 text: {exc}); "
            f"expected {TABLE_FORMATS}",
            path=path,
        ) from exc

    # Keep the last comment before the data: ASCII model files often name
    # their columns there ("# wavelength flux").
    last_comment: str | None = None
    comments: list[str] = []  # the header comments, for units
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not lines:
                last_comment = stripped.lstrip("#").strip()
                comments.append(line.lstrip()[1:].removeprefix(" "))
            continue
        lines.append(stripped.split("#", 1)[0].strip())
    if not lines:
        raise InputError("table has no data rows (only comments or blank lines)", path=path)

    comma = "," in lines[0]

    def split(line: str) -> list[str]:
        if comma:
            return [field.strip() for field in next(csv.reader([line]))]
        return line.split()

    first = split(lines[0])
    if not all(_is_number(token) for token in first):
        header, body = first, lines[1:]
    else:
        body = lines
        named = split(last_comment) if last_comment else []
        # Only trust the comment as a header if it names the two columns we
        # need: free-text comments ("# made by hand") must not rename them.
        if len(named) == len(first) and _pick(named, WAVELENGTH_NAMES) and _pick(named, FLUX_NAMES):
            header = named
        else:
            # Headerless: the first two columns are wavelength and flux.
            if len(first) < 2:
                raise InputError(
                    "missing flux column: a headerless table needs at least two columns "
                    "(wavelength, flux)",
                    path=path,
                )
            header = ["wavelength", "flux"] + [f"col{j}" for j in range(2, len(first))]
    if not body:
        raise InputError("table has no data rows (a header only)", path=path)

    rows = []
    for row, line in enumerate(body):
        fields = split(line)
        if len(fields) != len(header):
            raise InputError(
                f"data row {row} has {len(fields)} values but the table has "
                f"{len(header)} columns {header}",
                path=path,
                row=row,
            )
        rows.append(fields)
    columns = {name: np.array([r[j] for r in rows], dtype=object) for j, name in enumerate(header)}
    return _table_spectrum(path, columns, "", options, _comment_units(comments, header, path))


def _comment_units(comments: list[str], header: list[str], path: Path) -> dict[str, str]:
    """Units stated in an ECSV header or in ``# <column>_unit: <unit>`` comments."""
    if comments and comments[0].startswith("%ECSV"):
        return _ecsv_units(comments[1:], path)
    units: dict[str, str] = {}
    for comment in comments:
        m = _UNIT_COMMENT.match(comment.strip())
        if m is None:
            continue
        name = (m.group(1) or "flux").lower()
        # "flux_unit" and "wavelength_unit" name the roles; other words a column
        for role in (WAVELENGTH_NAMES, FLUX_NAMES, IVAR_NAMES, ERROR_NAMES):
            if name in role and (column := _pick(header, role)) is not None:
                name = column
                break
        else:
            name = next((c for c in header if c.lower() == name), name)
        units[name] = m.group(2).strip()
    return units


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
