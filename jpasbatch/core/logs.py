"""Logging for the ``jpasbatch`` command: ``-v`` / ``-q`` and the engines' start-up noise.

Progress and information go through :mod:`logging` to stderr (the ``jpasbatch``
loggers); a command's result lines stay on stdout. Dask, Ray and hats-import log
their own start-up chatter (a dashboard port already taken, worker start and stop)
at INFO and WARNING: useful when debugging a cluster, noise on a run that works,
so it is shown only with ``-v``. Their errors always show.
"""

from __future__ import annotations

import logging
import sys
import warnings

#: Loggers of the engines whose start-up messages are hidden unless -v.
ENGINE_LOGGERS = ("distributed", "dask", "ray", "hats", "hats_import", "lsdb", "tornado")
#: The level the engines log at, once :func:`setup` has run (None: their own default).
#: Ray sets its logger's level when it starts, so ``ray.init`` is given this one.
engine_level: int | None = None


def setup(verbosity: int = 0) -> None:
    """Configure logging for a command run.

    Parameters
    ----------
    verbosity
        ``-1`` (``-q``): warnings and errors only; ``0``: also progress and
        information; ``1`` (``-v``): also debugging messages, and the engines'
        own INFO / WARNING messages.
    """
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger("jpasbatch")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False
    global engine_level
    engine_level = logging.INFO if verbosity > 0 else logging.ERROR
    for name in ENGINE_LOGGERS:
        logging.getLogger(name).setLevel(engine_level)
    if verbosity <= 0:
        # distributed warns through `warnings` when :8787 is taken and it picks another port
        warnings.filterwarnings(
            "ignore", message=r"Port \d+ is already in use", module=r"distributed"
        )
