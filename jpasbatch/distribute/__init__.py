"""The one distribution layer: Dask clients and task maps, the Ray Train launcher.

The only package that imports dask, distributed, dask-cuda, dask-jobqueue or
ray (:mod:`jpasbatch.bench` measures the engines and may too). It knows nothing
of the science: the domain packages hand it plain functions to map or run.
"""
