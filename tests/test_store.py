"""The results store: atomic per-run files, resumable batches, corrupt files never trusted."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from calad_lib.runs import CorruptResultError, ResultStore, ResultWarning, StoreError, config_key


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


def _plant(store, cfg, payload):
    store.path(cfg).parent.mkdir(parents=True, exist_ok=True)
    store.path(cfg).write_text(payload if isinstance(payload, str) else json.dumps(payload))


@pytest.mark.parametrize("payload, why", [
    ('{"rows": [', "unreadable"),
    ({"config": {"x": 1}, "rows": []}, "no rows"),                       # counted as finished before
    ({"config": {"x": 1}, "rows": "garbage"}, "no rows"),                # a TypeError before
    ({"config": {"x": 2}, "rows": [{"auroc": 0.79}]}, "does not belong"),  # another run's file under this key
    ({"config": {"x": 1}, "rows": [{"other": 1}]}, "lack auroc"),
])
def test_a_bad_result_file_is_set_aside_and_its_run_redone(tmp_path, payload, why):
    store = ResultStore(tmp_path, columns=["auroc"])
    cfg = {"x": 1}
    _plant(store, cfg, payload)
    with pytest.warns(ResultWarning, match=why):
        assert not store.done(cfg)
    assert not store.path(cfg).exists() and (tmp_path / f"{store.path(cfg).name}.rejected-1").exists()
    store.write(cfg, [{"auroc": 0.75}])
    assert store.done(cfg) and store.frame()["auroc"].tolist() == [0.75]


def test_frame_sets_aside_what_it_cannot_trust(tmp_path):
    store = ResultStore(tmp_path)
    store.write({"x": 1}, [{"auroc": 0.7}])
    other = ResultStore(tmp_path / "other")
    other.write({"x": 2}, [{"auroc": 0.9}])
    (tmp_path / f"{config_key({'x': 3})}.json").write_text(other.path({"x": 2}).read_text())   # copied in
    with pytest.warns(ResultWarning, match="does not belong"):
        df = store.frame()
    assert df["auroc"].tolist() == [0.7]
    with pytest.raises(CorruptResultError, match="rerun that run"):
        store.read({"x": 4})


def test_an_empty_result_cannot_be_written(tmp_path):
    with pytest.raises(ValueError, match="at least one row"):
        ResultStore(tmp_path).write({"x": 1}, [])


def test_an_unwritable_results_folder_is_reported_before_any_work(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="not writable") as e:
        ResultStore(blocker / "05_detection").ensure_writable()
    assert "\n" not in str(e.value)


def test_two_processes_split_the_work_and_a_dead_claim_is_taken_over(tmp_path):
    store = ResultStore(tmp_path)
    cfg = {"x": 1}
    assert store.claim(cfg) and store.claim(cfg)            # this process holds it (idempotent)
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from calad_lib.runs import ResultStore
        print(ResultStore({str(tmp_path)!r}).claim({{"x": 1}}))""")], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "False"                    # a live holder keeps it
    store.release(cfg)
    dead = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from calad_lib.runs import ResultStore
        print(ResultStore({str(tmp_path)!r}).claim({{"x": 1}}), os.getpid())""")],
        capture_output=True, text=True, check=True)
    assert dead.stdout.split()[0] == "True"                  # it took the claim, then exited
    assert store.claim(cfg)                                   # its process is gone: taken over


def test_sigkill_leaves_no_partial_file(tmp_path):
    """A writer killed mid-batch leaves complete files only; rerunning skips them."""
    script = textwrap.dedent(f"""
        import os, signal, time
        from calad_lib.runs import ResultStore
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
