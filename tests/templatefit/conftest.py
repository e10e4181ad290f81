"""Coarse template grids shared by the template-fit tests (built once per session)."""

from __future__ import annotations

import pytest

from jpasbatch.templatefit import load_grids


@pytest.fixture(scope="session")
def grids_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("templatefit-cache")


@pytest.fixture(scope="session")
def coarse(grids_dir):
    return load_grids(coarse=True, cache_dir=grids_dir)
