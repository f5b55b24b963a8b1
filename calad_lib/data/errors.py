"""The errors of calad's data layer: each message names the problem and the fix in one line."""
from __future__ import annotations

__all__ = ["DataError", "DataNotFound", "DataCorrupted"]


class DataError(ValueError):
    """A dataset name or argument is wrong."""


class DataNotFound(DataError, FileNotFoundError):
    """A dataset is not on disk where calad looks for it."""


class DataCorrupted(DataError):
    """A dataset file exists but cannot be read (truncated, not the expected format)."""
