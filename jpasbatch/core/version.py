"""The package's version, as installed (provenance records and ``jpasbatch --version``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jpasbatch")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
