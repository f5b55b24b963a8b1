"""The results store: atomic per-run files, resumable batches, corrupt files never trusted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from calad_lib.store import ResultStore, config_key, CorruptResultError


def test_key_ignores_order_and_sees_values():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_write_read_frame(tmp_path):
    store = ResultStore(tmp_path)
    cfg = {"loss": "svdd", "seed": 0}
    assert not store.done(cfg)
    store.write(cfg, [{"method": "platt", "auroc": 0.7}, {"method": "beta", "auroc": 0.71}], preset="smoke")
    assert store.done(cfg)
    assert store.read(cfg)[1]["auroc"] == 0.71
    frame = store.frame()
    assert list(frame["method"]) == ["platt", "beta"]
    assert set(frame["loss"]) == {"svdd"} and set(frame["preset"]) == {"smoke"} and "commit" in frame


def test_corrupt_file_is_not_done(tmp_path):
    store = ResultStore(tmp_path)
    cfg = {"x": 1}
    store.path(cfg).parent.mkdir(parents=True, exist_ok=True)
    store.path(cfg).write_text('{"rows": [')
    assert not store.done(cfg)
    with pytest.raises(CorruptResultError, match="delete it to rerun"):
        store.read(cfg)
    assert store.frame().empty


def test_sigkill_leaves_no_partial_file(tmp_path):
    """A writer killed mid-batch leaves complete files only; rerunning skips them."""
    script = textwrap.dedent(f"""
        import os, signal, time
        from calad_lib.store import ResultStore
        store = ResultStore({str(tmp_path)!r})
        for i in range(1000):
            cfg = {{"i": i}}
            if store.done(cfg):
                continue
            store.write(cfg, [{{"value": i}}] * 200)
            if i == 3:
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    store = ResultStore(tmp_path)
    assert [store.done({"i": i}) for i in range(5)] == [True, True, True, True, False]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
