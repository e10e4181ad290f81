"""The package root exports the functions a notebook calls, and stays light to import."""

from __future__ import annotations

import subprocess
import sys

import jpasbatch


def test_every_export_is_the_library_function():
    from jpasbatch.pipeline.runner import run_job
    from jpasbatch.spectra.photometry import photometry_files
    from jpasbatch.vac.infer import infer

    assert jpasbatch.run_job is run_job
    assert jpasbatch.photometry is photometry_files
    assert jpasbatch.infer is infer
    for name in jpasbatch.__all__:
        assert getattr(jpasbatch, name) is not None, name
    assert set(jpasbatch.__all__) <= set(dir(jpasbatch))


def test_importing_the_package_loads_no_engine():
    code = "import sys, jpasbatch; print(sorted({'torch', 'dask', 'ray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
