"""A results store that survives interruption: one file per run, written atomically.

A run is identified by its configuration (a JSON-serialisable mapping); its key is a
hash of that configuration. :meth:`ResultStore.write` writes the run's rows to a
temporary file and renames it into place (``os.replace`` is atomic on POSIX), so a
run killed at any moment — even by ``SIGKILL`` — leaves either a complete file or
none. Rerunning a batch skips every key that :meth:`ResultStore.done` reports.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .provenance import stamp

__all__ = ["config_key", "ResultStore", "CorruptResultError"]


class CorruptResultError(RuntimeError):
    """A results file cannot be read."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    return value


def config_key(config: Mapping[str, Any], length: int = 16) -> str:
    """A stable hash of a configuration (key order does not matter)."""
    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o644 & ~umask)  # mkstemp creates 0600; results are shared files
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultStore:
    """Result rows of many runs under one folder: ``<root>/<key>.json``.

    Each file holds ``{"config": ..., "provenance": ..., "rows": [...]}``. Rows are
    flat mappings (one per model × method, say); :meth:`frame` joins every file into
    one ``DataFrame`` with the configuration and provenance fields as columns.
    """

    def __init__(self, root: os.PathLike | str):
        self.root = Path(root)

    def path(self, config: Mapping[str, Any]) -> Path:
        return self.root / f"{config_key(config)}.json"

    def done(self, config: Mapping[str, Any]) -> bool:
        """Whether a complete, readable result exists for ``config``."""
        path = self.path(config)
        if not path.exists():
            return False
        try:
            self._read(path)
        except CorruptResultError:
            return False
        return True

    def write(self, config: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], *,
              preset: str | None = None) -> Path:
        """Store ``rows`` for ``config`` atomically; returns the file written."""
        payload = {"config": _jsonable(config), "provenance": stamp(preset),
                   "rows": [_jsonable(r) for r in rows]}
        path = self.path(config)
        atomic_write_text(path, json.dumps(payload, indent=1))
        return path

    def read(self, config: Mapping[str, Any]) -> list[dict]:
        return self._read(self.path(config))["rows"]

    def _read(self, path: Path) -> dict:
        try:
            payload = json.loads(path.read_text())
            if not isinstance(payload, dict) or "rows" not in payload:
                raise ValueError("no rows")
            return payload
        except (OSError, ValueError) as exc:
            raise CorruptResultError(f"results file {path.name} is unreadable ({exc}); delete it to rerun that run") from None

    def frame(self) -> pd.DataFrame:
        """All rows of all complete runs, with config and provenance columns (corrupt files are skipped)."""
        records = []
        for path in sorted(self.root.glob("*.json")):
            try:
                payload = self._read(path)
            except CorruptResultError:
                continue
            base = {**{k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                       for k, v in payload["config"].items()}, **payload.get("provenance", {}),
                    "run_key": path.stem}
            records.extend({**base, **row} for row in payload["rows"])
        return pd.DataFrame.from_records(records)
