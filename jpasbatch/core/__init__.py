"""Shared core: errors, atomic writes, provenance, metrics, logging, model files.

The bottom layer: used by every other package, imports none of them.
"""
