"""The survey emulator: populations, spectral worlds, observing conditions."""
