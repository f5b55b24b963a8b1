"""The run spine every grid shares: the executor trusts nothing it has not checked and splits work between processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd

import calad_lib as calad
import pytest

from calad_lib.runs import ExecutorError, ResultStore, ResultWarning, StoreError, check_engine, run_all


def _square(config: dict) -> list[dict]:
    return [{"value": config["x"] ** 2, "pid": os.getpid()}]


def test_runs_each_configuration_once_and_reads_it_back(tmp_path):
    store = ResultStore(tmp_path, columns=["value"])
    configs = [{"x": i} for i in range(4)]
    first = run_all(configs, _square, store=store, progress=False, tidy=lambda df: df.assign(twice=2 * df.value))
    assert (first.ran, first.skipped) == (4, 0)
    assert first.frame()["twice"].tolist() == [0, 2, 8, 18]
    again = run_all(configs, lambda c: pytest.fail("a finished run was recomputed"), store=store, progress=False)
    assert (again.ran, again.skipped) == (0, 4) and again.frame()["value"].tolist() == [0, 1, 4, 9]


@pytest.mark.parametrize("payload", [{"rows": []}, {"rows": "garbage"}, "not json"])
def test_an_untrustworthy_file_is_set_aside_and_its_run_done_again(tmp_path, payload):
    store = ResultStore(tmp_path, columns=["value"])
    cfg = {"x": 3}
    path = store.path(cfg)
    path.write_text(json.dumps({"config": cfg, **payload}) if isinstance(payload, dict) else payload)
    with pytest.warns(ResultWarning, match="set aside"):
        run = run_all([cfg], _square, store=store, progress=False)
    assert run.ran == 1 and store.read(cfg)[0]["value"] == 9
    assert list(tmp_path.glob("*.rejected-1"))                 # kept, never deleted


def test_another_runs_file_under_a_key_is_not_counted(tmp_path):
    store = ResultStore(tmp_path, columns=["value"])
    store.write({"x": 2}, [{"value": 78.77}])
    store.path({"x": 2}).replace(store.path({"x": 1}))          # copied under another configuration's key
    with pytest.warns(ResultWarning, match="does not belong"):
        run = run_all([{"x": 1}], _square, store=store, progress=False)
    assert run.ran == 1 and store.read({"x": 1})[0]["value"] == 1


def test_an_unwritable_results_folder_stops_the_grid_before_any_work(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="not writable"):
        run_all([{"x": 1}], lambda c: pytest.fail("computed before the folder was checked"),
                store=ResultStore(blocker / "grid"), progress=False)


@pytest.mark.parametrize("kw, match", [(dict(engine="ray"), "unknown engine"),
                                       (dict(engine="dask", workers=-1), "at least one worker"),
                                       (dict(engine="dask", workers=0), "at least one worker"),
                                       (dict(engine="dask", scheduler="tcp://127.0.0.1:9"), "no Dask scheduler"),
                                       (dict(engine="dask", scheduler="nowhere"), "tcp://host:port")])
def test_engine_errors_are_one_line_within_seconds(kw, match, tmp_path):
    start = time.perf_counter()
    with pytest.raises(ExecutorError, match=match) as err:
        run_all([{"x": 1}], lambda c: pytest.fail("ran"), store=ResultStore(tmp_path), progress=False, **kw)
    assert "\n" not in str(err.value) and time.perf_counter() - start < 10
    check_engine("local", None, None)


def test_companion_files_are_part_of_a_finished_run(tmp_path):
    store = ResultStore(tmp_path, columns=["value"])
    run_all([{"x": 1}], lambda c: ([{"value": 1}], {"maps.bin": b"\x01\x02"}), store=store, progress=False)
    assert store.done({"x": 1}) and store.companion({"x": 1}, "maps.bin").read_bytes() == b"\x01\x02"
    store.companion({"x": 1}, "maps.bin").write_bytes(b"damaged")
    with pytest.warns(ResultWarning, match="companion file"):
        assert not store.done({"x": 1})
    assert sorted(p.name.split(".", 1)[1] for p in tmp_path.iterdir()) == ["json.rejected-1", "maps.bin.rejected-1"]


_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from calad_lib.runs import ResultStore, run_all

    def slow(config):
        time.sleep(0.3)
        return [{"value": config["x"], "pid": os.getpid()}]

    run = run_all([{"x": i} for i in range(8)], slow, store=ResultStore(sys.argv[1]), progress=False, poll=0.1)
    print(json.dumps({"ran": run.ran, "elsewhere": run.elsewhere, "rows": len(run.frame())}))
""")


def test_two_processes_on_one_grid_split_the_work(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    out = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(o["ran"] for o in out) == 8 and all(o["ran"] > 0 for o in out)   # each run computed once
    assert all(o["rows"] == 8 for o in out)                                      # both see every result
    frame = ResultStore(tmp_path).frame()
    assert frame["pid"].nunique() == 2 and sorted(frame["value"]) == list(range(8))


def test_a_claim_whose_process_died_is_taken_over(tmp_path):
    store = ResultStore(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    store._claim_path({"x": 5}).write_text(json.dumps({"host": socket.gethostname(),
                                                       "pid": int(dead.stdout)}))
    run = run_all([{"x": 5}], _square, store=store, progress=False)
    assert run.ran == 1 and store.read({"x": 5})[0]["value"] == 25


def test_a_run_another_live_process_holds_is_waited_for(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from calad_lib.runs import ResultStore
        store = ResultStore({str(tmp_path)!r})
        assert store.claim({{"x": 4}})
        print("claimed", flush=True)
        time.sleep(1.0)
        store.write({{"x": 4}}, [{{"value": "theirs"}}])
        store.release({{"x": 4}})""")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "claimed"
    run = run_all([{"x": 4}], lambda c: [{"value": "ours"}], store=ResultStore(tmp_path), progress=False, poll=0.1)
    holder.wait(timeout=30)
    assert (run.ran, run.elsewhere) == (0, 1)
    assert pd.DataFrame(run.frame())["value"].tolist() == ["theirs"]


def _warn_and_square(config: dict) -> list[dict]:
    import warnings

    warnings.warn(f"about {config['x']}", UserWarning)
    return [{"value": config["x"] ** 2, "pid": os.getpid()}]


def test_single_threaded_worker_processes_give_the_local_rows(tmp_path):
    configs = [{"x": i} for i in range(4)]
    local = run_all(configs, _square, store=ResultStore(tmp_path / "a"), progress=False).frame()
    with pytest.warns(UserWarning, match="about") as caught:                   # warnings come back from workers
        run = run_all(configs, _warn_and_square, store=ResultStore(tmp_path / "b"), engine="processes", workers=2,
                      progress=False)
    assert run.ran == 4 and run.engine == "processes" and len(caught) >= 4
    pool = run.frame()
    assert pool["value"].tolist() == local["value"].tolist()
    assert os.getpid() not in set(pool["pid"]) and pool["pid"].nunique() <= 2
    assert {c for c in pool.columns if c.startswith("phase_")} == {f"phase_{p}" for p in calad.profile.PHASES}


def test_auto_uses_what_was_measured_on_this_machine(tmp_path, monkeypatch):
    from calad_lib.runs import executor, parallel

    monkeypatch.setattr(parallel, "choice", lambda workers=None: {"engine": "local", "workers": 1, "speedup": 0.9})
    run = run_all([{"x": 1}, {"x": 2}], _square, store=ResultStore(tmp_path / "a"), engine="auto", progress=False)
    assert run.engine == "local"
    monkeypatch.setattr(parallel, "choice", lambda workers=None: {"engine": "processes", "workers": 2, "speedup": 1.6})
    run = run_all([{"x": 1}, {"x": 2}], _square, store=ResultStore(tmp_path / "b"), engine="auto", progress=False)
    assert run.engine == "processes" and run.workers == 2
    one = run_all([{"x": 3}], _square, store=ResultStore(tmp_path / "c"), engine="auto", progress=False)
    assert one.engine == "local"                     # one run: no pool to start
    assert executor._auto(5, None, threads=2) == ("local", 1)   # asked for threads: they are honoured


def test_the_parallelism_choice_is_measured_once_per_machine(tmp_path, monkeypatch):
    from calad_lib.runs import parallel

    calls = []
    monkeypatch.setattr(parallel, "measure", lambda w: calls.append(w) or {"workers": w, "one_process_seconds": 2.0,
                                                                          "processes_seconds": 1.0, "speedup": 2.0})
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 4)
    first = parallel.choice(2, path=tmp_path / "p.json")
    again = parallel.choice(2, path=tmp_path / "p.json")
    assert calls == [2] and first["measured"] and not again["measured"] and again["engine"] == "processes"
    assert parallel.choice(1, path=tmp_path / "p.json")["engine"] == "local"
    assert 0 < parallel.probe(1, 3) < 30             # the probe itself trains a LeNet for a few steps


def test_the_gpu_timing_command_says_in_one_line_that_there_is_no_gpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--out", str(out)], capture_output=True,
                          text=True, env={**os.environ, "CALAD_DEVICE": "cpu"}, cwd=calad.paths.repo_root())
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1 and proc.stdout.startswith("no GPU")
    assert not out.exists()


@pytest.mark.slow
def test_the_gpu_timing_command_runs_every_step_in_its_check_mode(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--check", "--experiment-epochs", "1",
                           "--out", str(out)], capture_output=True, text=True, cwd=calad.paths.repo_root(),
                          env={**os.environ, "CALAD_DEVICE": "cpu", "CALAD_CACHE": str(tmp_path / "cache")}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-1500:]
    rows = json.loads(out.read_text())
    whats = [r["what"] for r in rows]
    assert sum(w.startswith("epoch ") for w in whats) == 4 + 5 and any("thesis experiment" in w for w in whats)
    assert [w for w in whats if w.startswith("projected training")][-1].startswith("projected training, whole")
    assert all(r["seconds"] >= 0 for r in rows) and rows[0]["device"] == "cpu (check run)"
