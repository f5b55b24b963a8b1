"""One process with all the cores' threads, or one single-threaded process per core: which is faster here.

Small networks scale poorly over intra-op threads on a CPU: a LeNet training step on two threads is far
from twice as fast as on one, while two processes each training their own network on one thread keep both
cores busy. :func:`choice` measures both on this machine — training steps of the thesis' Fashion-MNIST LeNet,
in fresh processes so that nothing else competes with them — and keeps the answer in the model cache folder,
keyed by the CPU, the core count and the torch version, so each machine measures once.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..nets.lenet import LeNet
from ..paths import cache_dir

__all__ = ["choice", "measure", "probe"]

_STEPS = 80


def probe(threads: int, steps: int) -> float:
    """Seconds for ``steps`` Adam steps of the Fashion-MNIST LeNet (batch 128) on ``threads`` threads."""
    torch.set_num_threads(int(threads))
    torch.manual_seed(0)
    net = LeNet((1, 28, 28)).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    x = torch.rand(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)

    def step():
        loss = net(x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(int(steps)):
        step()
    return time.perf_counter() - start


def _run(threads: int, steps: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "calad_lib.runs.parallel", str(threads), str(steps)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _seconds(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("the parallelism probe failed")
    return float(out.strip().splitlines()[-1])


def measure(workers: int, steps: int = _STEPS) -> dict:
    """Throughput of ``workers`` single-threaded processes against one process with ``workers`` threads."""
    one = _seconds(_run(workers, workers * steps))
    procs = [_run(1, steps) for _ in range(workers)]
    many = max(_seconds(p) for p in procs)
    return {"workers": workers, "one_process_seconds": round(one, 3), "processes_seconds": round(many, 3),
            "speedup": round(one / many, 2), "steps": workers * steps}


def _key(workers: int) -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "workers": workers}


def choice(workers: int | None = None, *, path: Path | None = None) -> dict:
    """``{"engine": "processes" | "local", "workers": n, "speedup": ..., "measured": bool}`` for this machine.

    Processes win when they are at least 10 % faster than one process on all threads (they cost a start of
    a few seconds each). One core, or one worker, means ``local``. Measured once per machine and kept.
    """
    cores = os.cpu_count() or 1
    workers = int(workers or cores)
    if cores < 2 or workers < 2:
        return {"engine": "local", "workers": 1, "speedup": 1.0, "measured": False}
    path = path or cache_dir() / "parallel.json"
    key = _key(workers)
    try:
        known = json.loads(path.read_text())
        if known.get("key") == key:
            return {**known["result"], "measured": False}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = measure(workers)
    result["engine"] = "processes" if result["speedup"] >= 1.1 else "local"
    if result["engine"] == "local":
        result["workers"] = 1
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key, "result": result}, indent=1))
    except OSError:
        pass
    return {**result, "measured": True}


if __name__ == "__main__":
    print(probe(int(sys.argv[1]), int(sys.argv[2])))
