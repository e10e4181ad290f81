"""jpasbatch: catalogue-scale batch processing for the J-PAS narrow-band survey.

The functions a notebook calls, one per stage (as ``hats.read_hats`` or
``lsdb.open_catalog``)::

    import jpasbatch

    table, rejects = jpasbatch.photometry(["spec-0266-51602-0001.fits"])
    jpasbatch.simulate("field", jpasbatch.SimulateConfig(area_deg2=0.3))
    jpasbatch.ingest(["field/catalogue/part-0.parquet"], "catalogue")
    jpasbatch.make_mocks("mocks", jpasbatch.MocksConfig(), observed="catalogue")
    jpasbatch.train(jpasbatch.TrainSpec(train=["mocks"], out="runs"))
    jpasbatch.infer(jpasbatch.InferSpec(catalogue="catalogue", model="runs/classifier"))
    jpasbatch.run_job(jpasbatch.load_job("jobs/quickstart.yaml"))

Each is imported on first use, so ``import jpasbatch`` stays light (no torch,
Dask or Ray until a stage runs). The layers below are described in
``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import importlib

from jpasbatch.core.version import __version__

#: Exported name -> (module, name there).
_EXPORTS = {
    "photometry": ("jpasbatch.spectra.photometry", "photometry_files"),
    "SyntheticPhotometry": ("jpasbatch.physics.photometry", "SyntheticPhotometry"),
    "simulate": ("jpasbatch.sim.emulator", "simulate"),
    "SimulateConfig": ("jpasbatch.sim.emulator", "SimulateConfig"),
    "ingest": ("jpasbatch.catalog.ingest", "ingest"),
    "make_mocks": ("jpasbatch.mocks.pipeline", "make_mocks"),
    "MocksConfig": ("jpasbatch.mocks.pipeline", "MocksConfig"),
    "train": ("jpasbatch.classify.train", "train"),
    "TrainSpec": ("jpasbatch.classify.train", "TrainSpec"),
    "infer": ("jpasbatch.vac.infer", "infer"),
    "InferSpec": ("jpasbatch.vac.infer", "InferSpec"),
    "load_job": ("jpasbatch.pipeline.job", "load_job"),
    "run_job": ("jpasbatch.pipeline.runner", "run_job"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import an exported function on first use (PEP 562)."""
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'jpasbatch' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
