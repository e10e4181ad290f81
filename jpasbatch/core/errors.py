"""Exceptions that carry enough context for a survey scientist to fix the input.

Every error raised on bad input names the file and, where it applies, the column
(or HDU) and the row, so that a failed job never ends in a bare traceback.
"""

from __future__ import annotations

from pathlib import Path


class JpasBatchError(Exception):
    """Base class of every error jpasbatch raises on purpose."""


class InputError(JpasBatchError, ValueError):
    """Bad input data, located as precisely as possible.

    Parameters
    ----------
    message
        What is wrong, in words.
    path
        The offending file, if any.
    column
        The column, HDU or key, if any.
    row
        The zero-based row (or pixel) index, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.column = column
        self.row = row
        where = []
        if self.path is not None:
            where.append(f"file {self.path}")
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class RowConservationError(JpasBatchError):
    """Rows in != rows kept (or written) + rows rejected: something was lost or duplicated.

    One class for every stage that counts rows (ingest, the VAC), so that one
    ``except`` catches a conservation failure wherever it happens.
    """
