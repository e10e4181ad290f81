"""The measurement's physics: filters, IGM, synthetic photometry, templates, depth noise.

Pure kernels on numpy / torch, used by the domain packages; no engines.
"""
