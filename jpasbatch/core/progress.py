"""Progress bars on a terminal, and none in a log file.

tqdm redraws its bar with ``\r``: in a file (a batch job's log, a CI log) every
redraw stays as a line fragment. :func:`disable` gives tqdm's ``disable`` so that
bars show only when stderr is a terminal; long stages also log a line per step
(:mod:`logging`), which is what a log file keeps.
"""

from __future__ import annotations

import sys


def disable(progress: bool = True) -> bool | None:
    """tqdm's ``disable`` argument: ``None`` (a bar only on a terminal) or ``True`` (none)."""
    return None if progress else True


def on_terminal(progress: bool = True) -> bool:
    """Whether to draw the bars of a library that takes a plain flag (hats-import)."""
    return progress and sys.stderr.isatty()
