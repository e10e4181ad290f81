"""Command-line interface: a thin wrapper over the library functions.

Every sub-command maps to one library call; errors on bad input are printed as
one line naming the file (and column / row) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from jpasbatch import __version__
from jpasbatch.errors import JpasBatchError


def _add_filters(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "filters",
        help="list the photometric bands (and plot their curves)",
        description="Print the J-PAS bands (and the extra survey bands with --bands all): "
        "name, kind, tray, archive FILTER_ID, central and pivot wavelength, FWHM, "
        "extinction coefficient.",
    )
    p.add_argument(
        "--bands",
        default="jpas",
        help="'jpas' (default), 'all', or a comma-separated list of band names, kinds "
        "(narrow, medium, broad) and trays (T1, T2)",
    )
    p.add_argument("--plot", metavar="PNG", type=Path, help="draw the transmission curves")
    p.add_argument("--csv", metavar="FILE", type=Path, help="also write the table as CSV")
    p.set_defaults(func=_run_filters)


def _run_filters(args: argparse.Namespace) -> int:
    from jpasbatch.filters import get_system
    from jpasbatch.plots import plot_filters

    system = get_system(args.bands)
    table = system.table()
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if args.plot:
        plot_filters(system, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _add_photometry(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "photometry",
        help="synthetic J-PAS photometry of spectra files",
        description="Observe spectra through the J-PAS bands. Reads SDSS spec/spec-lite "
        "FITS, DESI coadd FITS and plain (wavelength, flux) tables (CSV, ASCII, FITS, "
        "Parquet; gzipped too) and writes one row per spectrum: ID, SOURCE, "
        "FLUX_<BAND> (band-averaged f_lambda, erg s-1 cm-2 A-1), MAG_<BAND> (AB) and "
        "COVERED_<BAND> (False, with NaN values, where the spectrum does not cover "
        "the band or too much of it is masked).",
    )
    p.add_argument("spectra", nargs="+", type=Path, metavar="SPECTRA", help="spectra files")
    p.add_argument("--out", required=True, type=Path, help="output Parquet file")
    p.add_argument("--bands", default="jpas", help="bands to compute (see `jpasbatch filters`)")
    p.add_argument(
        "--redshift",
        type=float,
        default=None,
        help="treat the spectra as rest-frame templates and observe them at this redshift",
    )
    p.add_argument(
        "--max-masked",
        type=float,
        default=0.1,
        help="largest fraction of a band's weight on masked pixels before the band is "
        "reported as not covered (default 0.1)",
    )
    p.set_defaults(func=_run_photometry)


def _run_photometry(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from jpasbatch.filters import get_system
    from jpasbatch.photometry import SyntheticPhotometry
    from jpasbatch.spectra.photometry import photometry_table
    from jpasbatch.spectra.readers import iter_spectra

    sp = SyntheticPhotometry(get_system(args.bands))
    files = tqdm(args.spectra, desc="spectra files", unit="file", disable=None)
    table = photometry_table(
        iter_spectra(files), sp, redshift=args.redshift, max_masked=args.max_masked
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out)
    n_cov = sum(int(table[f"COVERED_{b}"].to_numpy().sum()) for b in sp.bands)
    print(
        f"wrote {args.out}: {table.num_rows} spectra x {len(sp.bands)} bands "
        f"({n_cov} of {table.num_rows * len(sp.bands)} band measurements covered)"
    )
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the quickstart on the bundled data",
        description="Synthetic J-PAS photometry of a bundled set of stellar, galaxy "
        "and quasar templates at several redshifts, with the filter plot and a "
        "J-PAS photo-spectrum plot.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from jpasbatch.demo import run_demo

    outputs = run_demo(args.out)
    print("demo finished; outputs:")
    for what, path in outputs.items():
        print(f"  {what:<12} {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``jpasbatch`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="jpasbatch",
        description="Catalogue-scale batch processing for the J-PAS narrow-band survey: "
        "synthetic photometry, mock catalogues, classifiers, photo-z and value-added "
        "catalogues.",
    )
    parser.add_argument("--version", action="version", version=f"jpasbatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_filters(sub)
    _add_photometry(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jpasbatch`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (JpasBatchError, KeyError) as exc:
        # bad input, located by the library: one line, no traceback
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"jpasbatch {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
