"""Command-line interface: a thin wrapper over the library functions.

Every sub-command maps to one library call; errors on bad input are printed as
one line naming the file (and column / row) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from jpasbatch.cli import bench as cli_bench
from jpasbatch.cli import classify as cli_classify
from jpasbatch.cli import foundation as cli_foundation
from jpasbatch.cli import job as cli_job
from jpasbatch.cli import resample as cli_resample
from jpasbatch.cli import spectra as cli_spectra
from jpasbatch.cli import vac as cli_vac
from jpasbatch.cli.read_options import add_read_options, read_options
from jpasbatch.core import logs
from jpasbatch.core.errors import InputError, JpasBatchError
from jpasbatch.core.version import __version__


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
    from jpasbatch.physics.filters import get_system
    from jpasbatch.physics.plots import plot_filters

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
        "FITS, DESI coadd FITS and plain (wavelength, flux[, ivar or error]) tables (CSV, "
        "ASCII, ECSV, FITS, Parquet; gzipped too) and writes one row per spectrum: ID, "
        "SOURCE, SPECNAME, RA, DEC, Z_SPEC, CLASS_SPEC (where the file says them), "
        "FLUX_<BAND> (band-averaged f_lambda, erg s-1 cm-2 A-1; negative where noise "
        "makes it), MAG_<BAND> (AB; NaN where the flux is not positive) and "
        "COVERED_<BAND> (False, with NaN values, where the spectrum does not cover "
        "the band or too much of it is masked). A file that cannot be read, or a "
        "spectrum whose calibration is clearly broken, becomes one row of the rejects "
        "file (file, HDU/column, pixel, reason) and the others are written; the output "
        "feeds `jpasbatch infer --catalog` as it is.",
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
        "--noise",
        choices=["none", "depth"],
        default="none",
        help="'depth': observe each spectrum like a survey object at its own magnitude, "
        "with the depths of a random miniJPAS pointing (adds FLUX_RELERR_<BAND>)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draw")
    p.add_argument(
        "--rejects",
        type=Path,
        help="rejected files and spectra, CSV (default: OUT with .rejects.csv)",
    )
    p.add_argument(
        "--strict", action="store_true", help="exit with status 1 if any file is rejected"
    )
    add_read_options(p)
    p.add_argument(
        "--max-masked",
        type=float,
        default=0.1,
        help="largest fraction of a band's weight on masked pixels before the band is "
        "reported as not covered (default 0.1)",
    )
    p.set_defaults(func=_run_photometry)


def _run_photometry(args: argparse.Namespace) -> int:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from jpasbatch.physics.filters import get_system
    from jpasbatch.physics.photometry import SyntheticPhotometry
    from jpasbatch.spectra.batch import rejects_table
    from jpasbatch.spectra.photometry import add_depth_noise, photometry_files

    sp = SyntheticPhotometry(get_system(args.bands))
    files = tqdm(args.spectra, desc="spectra files", unit="file", disable=None)
    table, rejects = photometry_files(
        files, sp, read_options(args), redshift=args.redshift, max_masked=args.max_masked
    )
    if args.noise == "depth":
        table = add_depth_noise(table, sp.bands, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rejects_path = args.rejects or args.out.with_suffix(".rejects.csv")
    if table.num_rows:
        pq.write_table(table, args.out)
    else:
        args.out.unlink(missing_ok=True)  # never leave an older run's table looking current
    pacsv.write_csv(rejects_table(rejects), rejects_path)
    for r in rejects[:5]:
        print(f"rejected: {r.message()}", file=sys.stderr)
    n_cov = sum(int(table[f"COVERED_{b}"].to_numpy().sum()) for b in sp.bands)
    print(f"{table.num_rows} written, {len(rejects)} rejected: see {rejects_path}")
    if table.num_rows:
        print(
            f"wrote {args.out}: {table.num_rows} spectra x {len(sp.bands)} bands "
            f"({n_cov} of {table.num_rows * len(sp.bands)} band measurements covered)"
        )
    else:
        print("jpasbatch photometry: error: no spectrum could be used", file=sys.stderr)
        return 1
    return 1 if args.strict and rejects else 0


def _add_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="validate, cut and HEALPix-partition survey catalogues",
        description="Read catalogues in the CEFCA archive layout (FITS, CSV, Parquet; flux "
        "and relative-error arrays or one column per band), apply the quality cuts and "
        "write a HATS catalogue (open it with lsdb.open_catalog(OUT)) plus OUT/rejects/ "
        "with one row per removed input row and its reason. Rows in = rows kept + rows "
        "rejected is checked on every run.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="catalogue files")
    p.add_argument("--out", required=True, type=Path, help="output folder (the HATS catalogue)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted ingest in OUT")
    p.add_argument(
        "--columns",
        type=Path,
        metavar="YAML",
        help="column mapping for other layouts (keys: tile_id, number, ra, dec, flags, "
        "mask_flags, class_star, flux, relerr, band_pattern, object_id)",
    )
    p.add_argument("--min-bands", type=int, default=50, help="minimum observed bands")
    p.add_argument("--no-flags-cut", action="store_true", help="keep rows with FLAGS != 0")
    p.add_argument(
        "--no-mask-flags-cut", action="store_true", help="keep rows with MASK_FLAGS != 0"
    )
    p.add_argument(
        "--min-class-star", type=float, default=None, help="keep only CLASS_STAR >= this"
    )
    p.add_argument(
        "--max-rows", type=int, default=1_000_000, help="maximum rows per HEALPix partition"
    )
    p.add_argument("--chunk-rows", type=int, default=200_000, help="rows read at a time")
    p.add_argument("--dask-address", help="scheduler address of a running Dask cluster")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers (default: cores)")
    p.add_argument(
        "--partitioner",
        choices=["direct", "hats-import"],
        default="direct",
        help="'direct' (default: one read of the validated rows, hats' own pixel choice) or "
        "hats-import's map / split / reduce pipeline; the same catalogue either way",
    )
    p.set_defaults(func=_run_ingest)


def _run_ingest(args: argparse.Namespace) -> int:
    import yaml

    from jpasbatch.catalog.cuts import QualityCuts
    from jpasbatch.catalog.ingest import ingest
    from jpasbatch.catalog.readers import ColumnMap

    columns = (
        ColumnMap.from_dict(yaml.safe_load(args.columns.read_text())) if args.columns else None
    )
    cuts = QualityCuts(
        flags=not args.no_flags_cut,
        mask_flags=not args.no_mask_flags_cut,
        min_bands=args.min_bands,
        min_class_star=args.min_class_star,
    )
    summary = ingest(
        args.inputs,
        args.out,
        columns=columns,
        cuts=cuts,
        max_rows_per_partition=args.max_rows,
        chunk_rows=args.chunk_rows,
        resume=args.resume,
        dask_address=args.dask_address,
        n_workers=args.workers,
        partitioner=args.partitioner,
    )
    print(summary.to_text())
    return 0


_FAST_HELP = (
    "coarse redshift grids for the template photometry: quick looks and tests "
    "(~0.5%% flux error; the grids are built once per machine and cached)"
)


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="emulate an observed J-PAS survey (catalogue + hidden truth)",
        description="The survey emulator: stars, galaxies and QSOs from published counts "
        "and luminosity functions, DESI redrock spectra, Inoue+2014 IGM, observed through "
        "the as-built curves with the depths, seeing and zero-point errors of the miniJPAS "
        "tiles. Writes OUT/catalogue/ (CEFCA archive layout, ready for `jpasbatch "
        "ingest`), OUT/truth/ (class, redshift, magnitude, physical labels, noiseless "
        "fluxes, spectroscopic cross-match flag) and OUT/simulate_summary.json.",
    )
    p.add_argument("--area", type=float, default=1.0, help="sky area in deg2 (default 1)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--r-max", type=float, default=24.0, help="faintest rSDSS magnitude")
    p.add_argument("--fast", action="store_true", help=_FAST_HELP)
    p.add_argument("--workers", type=int, default=None, help="local Dask workers")
    p.add_argument("--dask-address", help="scheduler address of a running Dask cluster")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from jpasbatch.sim.emulator import SimulateConfig, simulate

    config = SimulateConfig(area_deg2=args.area, seed=args.seed, r_max=args.r_max, fast=args.fast)
    summary = simulate(args.out, config, address=args.dask_address, n_workers=args.workers)
    print(f"simulated {summary['rows']:,} objects in {len(summary['tiles'])} pointings:")
    for cls, n in sorted(summary["classes"].items()):
        print(f"  {cls:<9}{n:,}")
    print(f"spectroscopic cross-match subset: {summary['xmatch']:,}")
    print(f"catalogue: {summary['catalogue']}\ntruth:     {summary['truth']}")
    return 0


def _add_mocks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mocks",
        help="build mock catalogues from the simulated spectral world",
        description="Mock catalogues: Pickles stars, kcorrect galaxies and SDSS QSO "
        "eigenspectra on the population priors, synthetic J-PAS photometry, errors by "
        "similarity search against the observed catalogue (or the depth model), optional "
        "hybridisation, inverse-density sampling weights (1/3 per STAR / GALAXY / QSO) and "
        "stratified train / validation / test splits. With --sim, also Test-Real and "
        "Test-Synth from the emulator's spectroscopic cross-match objects (and with "
        "--deep N a random sample of N catalogue objects of every magnitude). With "
        "--extras, the foundation model's columns (MOCK_EXT: CLASS_STAR, DECam g r z, "
        "WISE W1 W2, MORPH_TYPE, TEFF, EW_<LINE>). With --report, figures and KS "
        "distances comparing both error models with the survey.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--observed", type=Path, help="ingested observed catalogue (HATS folder)")
    p.add_argument("--sim", type=Path, help="emulator output (for Test-Real / Test-Synth)")
    p.add_argument("--n-objects", type=int, default=100_000, help="objects before hybridisation")
    p.add_argument("--error-model", choices=["similarity", "depth"], default="similarity")
    p.add_argument("--hybridise", action="store_true", help="replace training rows by 5 hybrids")
    p.add_argument(
        "--qso-boost",
        type=float,
        default=1.0,
        help="draw QSOs this many times more often than on the sky (10 for classifier "
        "training sets; validation / test rows get abundance weights)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--partition-rows", type=int, default=50_000)
    p.add_argument("--extras", action="store_true", help="the foundation model's columns")
    p.add_argument(
        "--families",
        nargs="+",
        metavar="FAMILY",
        help="draw objects from these spectral families, randomised ('all', or names from "
        "star_pickles star_redrock gal_kcorrect gal_redrock qso_sdss_pca qso_redrock "
        "qso_composite); default: the simulated world's single template set per class",
    )
    p.add_argument(
        "--missing-bands",
        type=float,
        default=0.0,
        help="share of training rows that lose 1-4 bands (blue end, red end or any), as "
        "real spectra and catalogues do",
    )
    p.add_argument(
        "--zero-point-mag", type=float, default=0.0, help="per-object band zero-point scatter"
    )
    p.add_argument(
        "--psf-scatter-mag", type=float, default=0.0, help="per-band PSF scatter of galaxies"
    )
    p.add_argument("--deep", type=int, help="with --sim: also deep test sets of N objects")
    p.add_argument("--report", action="store_true", help="write the diagnostics report")
    p.add_argument("--fast", action="store_true", help=_FAST_HELP)
    p.add_argument("--workers", type=int, default=None, help="local Dask workers")
    p.add_argument("--dask-address", help="scheduler address of a running Dask cluster")
    p.set_defaults(func=_run_mocks)


def _run_mocks(args: argparse.Namespace) -> int:
    from jpasbatch.mocks.pipeline import MocksConfig, error_model_report, make_mocks
    from jpasbatch.mocks.testsets import build_test_sets
    from jpasbatch.sim.spectral_families import FAMILIES

    config = MocksConfig(
        n_objects=args.n_objects,
        seed=args.seed,
        error_model=args.error_model,
        hybridise=args.hybridise,
        qso_boost=args.qso_boost,
        partition_rows=args.partition_rows,
        fast=args.fast,
        extras=args.extras,
        families=list(FAMILIES) if args.families == ["all"] else args.families,
        missing_bands=args.missing_bands,
        zero_point_mag=args.zero_point_mag,
        psf_scatter_mag=args.psf_scatter_mag,
    )
    props = make_mocks(
        args.out / "mocks",
        config,
        observed=args.observed,
        address=args.dask_address,
        n_workers=args.workers,
    )
    print(f"mocks: {props['total_rows']:,} rows in {len(props['partitions'])} partitions "
          f"at {args.out / 'mocks'}")  # fmt: skip
    if args.sim:
        counts = build_test_sets(args.sim, args.out, seed=args.seed)
        print(f"Test-Real / Test-Synth: {counts['test_real']:,} objects each in {args.out}")
        if args.deep:
            counts = build_test_sets(args.sim, args.out, seed=args.seed, sample=args.deep,
                                     suffix="_deep")  # fmt: skip
            print(f"deep Test-Real / Test-Synth: {counts['test_real']:,} objects each")
    if args.report:
        if args.observed is None:
            raise InputError("--report compares with the survey: give --observed")
        truth = args.sim / "truth" if args.sim else None
        rep = error_model_report(args.out / "report", args.observed, config, truth=truth)
        print(f"report: {args.out / 'report' / 'report.md'} (closer to the survey: "
              f"{rep['better_model']})")  # fmt: skip
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="J-PAS photometry of the bundled templates (the pipeline: `jpasbatch run "
        "jobs/quickstart.yaml`)",
        description="Synthetic J-PAS photometry of a bundled set of stellar, galaxy "
        "and quasar templates at several redshifts, with the filter plot and a "
        "J-PAS photo-spectrum plot. `make demo` runs it, then the whole pipeline with "
        "`jpasbatch run jobs/quickstart.yaml`.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from jpasbatch.physics.demo import run_demo

    outputs = run_demo(args.out)
    print("demo finished; outputs:")
    for what, path in outputs.items():
        print(f"  {what:<12} {path}")
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help; descriptions wrapped, example epilogs as written.

    An option whose help already says its default is left as it is; a required
    option says so. A description's paragraphs (blank-line separated) are wrapped
    one by one; the ``example:`` epilog keeps its lines, so commands stay copyable.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is argparse.SUPPRESS:
            return text
        if not action.option_strings:  # positionals are always given
            return text
        if action.required:
            return f"{text} (required)"
        shown = action.default
        for value, word in ((None, "not set"), (False, "off"), (True, "on")):
            if action.default is value:  # identity: a default of 0 is not "off"
                shown = word
        return f"{text} (default: {shown})".replace("%", "%%")

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example"):  # command lines stay as written, to be copied
            return "".join(indent + line for line in text.splitlines(keepends=True))
        paragraphs = text.split("\n\n")  # a description's paragraphs, each wrapped
        return "\n\n".join(
            super(HelpFormatter, self)._fill_text(t, width, indent) for t in paragraphs
        )


class _Parser(argparse.ArgumentParser):
    """An argument parser with :class:`HelpFormatter` unless told otherwise."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


#: One example per sub-command, shown at the end of its --help.
EXAMPLES: dict[str, str] = {
    "filters": "jpasbatch filters --bands narrow --plot curves.png --csv bands.csv",
    "photometry": "jpasbatch photometry spec-*.fits table.csv --noise depth --out phot.parquet",
    "ingest": "jpasbatch ingest sim/catalogue/*.parquet --out cat --min-bands 50",
    "simulate": "jpasbatch simulate --area 1 --out sim --seed 1",
    "resample": "jpasbatch resample sim/catalogue/*.parquet --rows 10000000 --out rehearsal",
    "mocks": "jpasbatch mocks --out mocks --error-model depth --families all --missing-bands 0.3",
    "train": "jpasbatch train mocks/mocks --out runs --name ann1 --workers 2",
    "evaluate": "jpasbatch evaluate ann1=runs/ann1 --test mocks/mocks --out eval",
    "study": "jpasbatch study --mocks mocks/mocks --mocks-plain plain/mocks "
    "--mocks-hybrid hybrid/mocks --sim sim --catalogue cat --out study",
    "transfer": "jpasbatch transfer --out transfer_study --n-objects 40000",
    "publish-model": "jpasbatch publish-model build/default_models/runs/committee "
    "--job jobs/train_default.yaml --real-check real_check.json --transfer transfer.json",
    "foundation-train": "jpasbatch foundation-train --spec jobs/train_foundation.yaml",
    "foundation-predict": "jpasbatch foundation-predict runs/fm/model.json phot.parquet "
    "--out fm.parquet",
    "foundation-evaluate": "jpasbatch foundation-evaluate fm=runs/fm --test-dir mocks "
    "--out fm_eval",
    "infer": "jpasbatch infer --catalog cat --out vac --bf16",
    "targets": "jpasbatch targets vac --out targets --p-qso 0.5 --mag-limit 22.5",
    "real-check": "jpasbatch real-check ../shared/data/real_spectra --model runs/ann1 --record",
    "spectra": "jpasbatch spectra spec-*.fits --out spectra.parquet --workers 2",
    "spectra-prepare": "jpasbatch spectra-prepare spectra/*.fits --out prepared --workers 2",
    "spectra-emulate": "jpasbatch spectra-emulate --out emulated",
    "spectra-train": "jpasbatch spectra-train prepared --out runs --name gasnet",
    "spectra-evaluate": "jpasbatch spectra-evaluate prepared --out spectra_evaluation",
    "spectra-publish": "jpasbatch spectra-publish runs/spectra_default --job "
    "jobs/train_spectra_default.yaml --evaluation emulated=eval_emulated",
    "run": "jpasbatch run jobs/quickstart.yaml --dry-run",
    "bench": "jpasbatch bench --stages vac,transformer --preset quick --out bench_report",
    "demo": "jpasbatch demo --out demo_output",
}


def _add_examples(sub: argparse._SubParsersAction) -> None:
    for name, parser in sub.choices.items():
        example = EXAMPLES.get(name)
        if example:
            parser.epilog = f"example:\n  {example}\n"


def build_parser() -> argparse.ArgumentParser:
    """The ``jpasbatch`` argument parser."""
    parser = _Parser(
        prog="jpasbatch",
        description="Catalogue-scale batch processing for the J-PAS narrow-band survey: "
        "synthetic photometry, mock catalogues, classifiers, photo-z and value-added "
        "catalogues.",
    )
    parser.add_argument("--version", action="version", version=f"jpasbatch {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of errors on bad input"
    )
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument(
        "-v", "--verbose", action="store_true", help="debug messages, and Dask / Ray start-up logs"
    )
    loud.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_filters(sub)
    _add_photometry(sub)
    _add_ingest(sub)
    _add_simulate(sub)
    cli_resample.add_resample(sub)
    _add_mocks(sub)
    cli_classify.add_train(sub)
    cli_classify.add_evaluate(sub)
    cli_classify.add_study(sub)
    cli_classify.add_transfer(sub)
    cli_classify.add_publish(sub)
    cli_foundation.add_train(sub)
    cli_foundation.add_predict(sub)
    cli_foundation.add_evaluate(sub)
    cli_vac.add_infer(sub)
    cli_vac.add_targets(sub)
    cli_vac.add_real_check(sub)
    cli_spectra.add_spectra(sub)
    cli_spectra.add_prepare(sub)
    cli_spectra.add_emulate(sub)
    cli_spectra.add_train(sub)
    cli_spectra.add_evaluate(sub)
    cli_spectra.add_publish(sub)
    cli_job.add_run(sub)
    cli_bench.add_bench(sub)
    _add_demo(sub)
    _add_examples(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jpasbatch`` command."""
    args = build_parser().parse_args(argv)
    logs.setup(1 if args.verbose else -1 if args.quiet else 0)
    try:
        return args.func(args)
    except (JpasBatchError, KeyError, ValidationError, OSError) as exc:
        if args.debug:
            raise
        # bad input, located by the library (or a path the system refused: missing,
        # a folder where a file was expected, no permission): one line, no traceback
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            # "file X: No such file or directory", like the library's own errors
            msg = f"file {exc.filename}: {exc.strerror}"
        print(f"jpasbatch {args.command}: error: {msg}", file=sys.stderr)
        return 2
