"""Spectra: the in-memory container and the file readers."""

from jpasbatch.spectra.spectrum import Spectrum

__all__ = ["Spectrum"]
