"""The four classes of the pipeline, in the order of every probability column and array."""

from __future__ import annotations

#: Class names; ``P_<CLASS>`` columns and the last axis of probability arrays follow this order.
CLASSES: tuple[str, ...] = ("STAR", "GALAXY", "QSO_LOW", "QSO_HIGH")
