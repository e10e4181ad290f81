"""The ``jpasbatch`` command: the parser in :mod:`jpasbatch.cli.app`, one module per group.

Thin by rule: each command parses its options, calls one library function and
prints the result. Nothing below this package imports it. :func:`main` is the
installed script's entry point (``jpasbatch.cli:main``).
"""

from jpasbatch.cli.app import main

__all__ = ["main"]
