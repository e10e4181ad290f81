"""jpasbatch: catalogue-scale batch processing for the J-PAS narrow-band survey."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jpasbatch")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
