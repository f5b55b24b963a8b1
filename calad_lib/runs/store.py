"""A results store that survives interruption and trusts nothing it has not checked.

A run is identified by its configuration (a JSON-serialisable mapping); its key is a hash of
that configuration and names its file ``<root>/<key>.json``. :meth:`ResultStore.write` writes
the rows to a temporary file and renames it into place (``os.replace`` is atomic on POSIX), so a
run killed at any moment, even by ``SIGKILL``, leaves either a complete file or none.

A file counts as a finished run only when it parses, its stored configuration is the expected
one, and it holds a non-empty list of rows with the expected columns. Any other file under a
key is set aside (renamed ``<key>.json.rejected-<n>``, never deleted) with a one-line
:class:`ResultWarning`, and the run is done again. A run may store companion files beside its
rows (``<key>.<name>``, e.g. arrays for a figure); their SHA-256 is part of the rows' file, so a
missing or damaged companion makes the run unfinished too. Two processes filling one store split the
work through claim files (:meth:`ResultStore.claim`); a claim whose process is gone is taken over.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..paths import relative
from ..provenance import stamp

__all__ = ["config_key", "atomic_write_text", "atomic_write_bytes", "ensure_writable", "ResultStore",
           "CorruptResultError", "ResultWarning", "StoreError"]


class CorruptResultError(RuntimeError):
    """A results file cannot be used."""


class StoreError(OSError):
    """A results or cache folder cannot be written; raised before any work starts."""


class ResultWarning(UserWarning):
    """A results file was set aside and its run will be done again."""


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    Every file calad writes (results, models, records) gets mode 0644 less the umask (``mkstemp``
    alone would leave 0600, hiding shared results and models from other users of the folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o644 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def ensure_writable(folder: os.PathLike | str, what: str = "results") -> Path:
    """Create ``folder`` if needed and check that files can be written there; a :class:`StoreError` otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".calad-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(f"the {what} folder {relative(folder)} is not writable ({exc.strerror or exc}); "
                         f"fix its permissions or point CALAD_{what.upper()} elsewhere") from None
    return folder


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultStore:
    """Result rows of many runs under one folder: ``<root>/<key>.json``.

    Each file holds ``{"config": ..., "provenance": ..., "rows": [...]}``. Rows are flat mappings
    (one per model × method, say); ``columns`` names the fields every row must have. :meth:`frame`
    joins every valid file into one ``DataFrame`` with the configuration and provenance fields as
    columns.
    """

    def __init__(self, root: os.PathLike | str, *, columns: Iterable[str] = ()):
        self.root = Path(root)
        self.columns = tuple(columns)

    def path(self, config: Mapping[str, Any]) -> Path:
        return self.root / f"{config_key(config)}.json"

    def companion(self, config: Mapping[str, Any], name: str) -> Path:
        """Where the companion file ``name`` of ``config``'s run lives: ``<root>/<key>.<name>``."""
        return self.root / f"{config_key(config)}.{name}"

    def ensure_writable(self) -> "ResultStore":
        """Check, before any run starts, that results can be written here."""
        ensure_writable(self.root, "results")
        return self

    # ---------------------------------------------------------------- reading, validated
    def _check(self, path: Path, payload: Any, config: Mapping[str, Any] | None) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
            raise CorruptResultError("not a calad results file")
        if config_key(payload["config"]) != path.stem:
            raise CorruptResultError("its configuration does not belong under this key (another run's file?)")
        if config is not None and payload["config"] != _jsonable(config):
            raise CorruptResultError("its configuration differs from this run's")
        rows = payload.get("rows")
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise CorruptResultError("it holds no rows")
        missing = [c for c in self.columns if any(c not in r for r in rows)]
        if missing:
            raise CorruptResultError(f"its rows lack {', '.join(missing)}")
        companions = payload.get("companions", {})
        if not isinstance(companions, dict):
            raise CorruptResultError("its list of companion files is damaged")
        for name, digest in companions.items():
            other = path.with_name(f"{path.stem}.{name}")
            try:
                ok = hashlib.sha256(other.read_bytes()).hexdigest() == digest
            except OSError:
                ok = False
            if not ok:
                raise CorruptResultError(f"its companion file {other.name} is missing or damaged")

    def _load(self, path: Path, config: Mapping[str, Any] | None = None) -> dict:
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CorruptResultError(f"unreadable ({type(exc).__name__})") from None
        self._check(path, payload, config)
        return payload

    def set_aside(self, path: Path, why: str) -> Path:
        """Rename an unusable results file out of the way (never delete it) and say so in one line."""
        n = 1
        while (target := path.with_name(f"{path.name}.rejected-{n}")).exists():
            n += 1
        for other in path.parent.glob(f"{path.stem}.*"):   # its companions go with it
            if other != path and other.suffix not in (".json", ".claim") and ".rejected-" not in other.name:
                os.replace(other, other.with_name(f"{other.name}.rejected-{n}"))
        os.replace(path, target)
        warnings.warn(f"results file {relative(path)} set aside as {target.name}: {why}; its run will be done again",
                      ResultWarning, stacklevel=3)
        return target

    def done(self, config: Mapping[str, Any]) -> bool:
        """Whether a valid result exists for ``config``; an invalid file is set aside (and ``False`` returned)."""
        path = self.path(config)
        if not path.exists():
            return False
        try:
            self._load(path, config)
        except CorruptResultError as exc:
            self.set_aside(path, str(exc))
            return False
        return True

    def read(self, config: Mapping[str, Any]) -> list[dict]:
        path = self.path(config)
        try:
            return self._load(path, config)["rows"]
        except CorruptResultError as exc:
            raise CorruptResultError(f"results file {relative(path)} cannot be used ({exc}); rerun that run") from None

    def frame(self) -> pd.DataFrame:
        """All rows of all valid runs, with config and provenance columns (invalid files are set aside)."""
        records = []
        for path in sorted(self.root.glob("*.json")):
            try:
                payload = self._load(path)
            except CorruptResultError as exc:
                self.set_aside(path, str(exc))
                continue
            base = {**{k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                       for k, v in payload["config"].items()}, **payload.get("provenance", {}),
                    "run_key": path.stem}
            records.extend({**base, **row} for row in payload["rows"])
        return pd.DataFrame.from_records(records)

    # ---------------------------------------------------------------- writing
    def write(self, config: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], *,
              preset: str | None = None, companions: Mapping[str, bytes] | None = None) -> Path:
        """Store ``rows`` for ``config`` atomically, after its ``companions`` (name: bytes); returns the file."""
        rows = [_jsonable(r) for r in rows]
        if not rows:
            raise ValueError("a run must write at least one row; an empty result would read as unfinished")
        payload = {"config": _jsonable(config), "provenance": stamp(preset), "rows": rows}
        if companions:
            for name, data in companions.items():
                atomic_write_bytes(self.companion(config, name), data)
            payload["companions"] = {name: hashlib.sha256(data).hexdigest() for name, data in companions.items()}
        path = self.path(config)
        atomic_write_text(path, json.dumps(payload, indent=1))
        return path

    # ---------------------------------------------------------------- claims: two processes, one grid
    def _claim_path(self, config: Mapping[str, Any]) -> Path:
        return self.root / f"{config_key(config)}.claim"

    def claim(self, config: Mapping[str, Any]) -> bool:
        """Take the run of ``config`` for this process: ``False`` if another live process holds it.

        A claim file records its holder's host and pid; a claim of a process that is gone (on this
        host) is taken over.
        """
        path = self._claim_path(config)
        self.root.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(path.read_text())
                except (OSError, ValueError):
                    holder = {}
                if holder == me:
                    return True
                if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) \
                        and not _process_alive(holder["pid"]):
                    path.unlink(missing_ok=True)   # its process is gone: take it over
                    continue
                return False
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            return True
        return False

    def release(self, config: Mapping[str, Any]) -> None:
        """Drop this process's claim on ``config`` (after its result is written, or on failure)."""
        path = self._claim_path(config)
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
