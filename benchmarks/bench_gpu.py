"""GPU timings for the thesis protocol: per-epoch time of every network, one thesis-preset experiment,
and the projected time of the whole thesis grid of chapter 05.

    .venv/bin/python benchmarks/bench_gpu.py [--experiment-epochs 200] [--out results/recorded/gpu_timings.json]

On a machine without a GPU it says so in one line and exits (status 0), writing nothing. On a GPU:

1. one epoch of every loss of §4.1 at the thesis' data sizes (Fashion-MNIST: 6,000 normal images of a
   class, as many OE images for the supervised losses; MVTec-size networks on 256 images of 224/256 px);
2. one experiment of the ``thesis`` preset of chapter 05 (Fashion-MNIST class 0, ``--loss``, seed 0, 200
   epochs unless ``--experiment-epochs`` says otherwise), end to end: training, calibration, evaluation;
3. the projection: experiments in the thesis grid (datasets × classes × losses × seeds) times the measured
   time of one, scaled per loss by the measured epoch times.

The record (a list of rows, one per measurement, with device name and provenance) is what the
performance chapter shows.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import calad_lib as calad


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def epoch_seconds(loss: str, x: torch.Tensor, oe: torch.Tensor, device: torch.device, **kw) -> float:
    cfg = calad.train.TrainConfig(loss=loss, dataset=kw.pop("dataset", "fashion_mnist"), epochs=1, milestones=(),
                                  **kw)
    calad.train.train(cfg, x[:256], oe[:256], progress=False, device=device, cache=False)   # warm-up
    _sync(device)
    t = time.perf_counter()
    calad.train.train(cfg, x, oe, progress=False, device=device, cache=False)
    _sync(device)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment-epochs", type=int, default=200, help="epochs of the timed thesis experiment")
    ap.add_argument("--loss", default="svdd", help="loss of the timed thesis experiment")
    ap.add_argument("--out", default=str(calad.paths.recorded_dir() / "gpu_timings.json"))
    args = ap.parse_args(argv)
    device = calad.device.get_device()
    if device.type != "cuda":
        print("no GPU: PyTorch sees no CUDA device here, so there is nothing to time (run this where a GPU is lent)")
        return 0
    name = torch.cuda.get_device_name(device)
    rows: list[dict] = []
    stamp = {**calad.provenance.stamp("thesis"), "device": name}

    x = calad.data.one_vs_all("fashion_mnist", 0, 0).full_train
    oe = calad.synthesis.oe_images(len(x), 1, 28, seed=0, part="train")
    per_loss = {}
    for loss in calad.losses.DETECTION_LOSSES:
        per_loss[loss] = epoch_seconds(loss, x, oe, device)
        rows.append({"what": f"epoch {loss}", "images": len(x), "seconds": round(per_loss[loss], 3), **stamp})
        print(f"epoch {loss:<10s} {per_loss[loss]:7.3f} s ({len(x)} images)", flush=True)
    big = torch.rand(256, 3, 256, 256)
    for loss, size in [("svdd", 224), ("hsc", 224), ("ssim_pixel", 256), ("unet", 256), ("fcdd", 224)]:
        xs = big[..., :size, :size]
        sec = epoch_seconds(loss, xs, xs.flip(0), device, dataset="mvtec", batch_size=64, amp=True)
        rows.append({"what": f"epoch {loss} {size}px", "images": len(xs), "seconds": round(sec, 3), **stamp})
        print(f"epoch {loss:<10s} {size}px {sec:7.3f} s (256 images)", flush=True)

    params = dict(calad.config.resolve_params("05_detection", "thesis",
                                              {"classes": [0], "losses": [args.loss], "seeds": [0],
                                               "extra_datasets": [], "epochs": args.experiment_epochs}))
    (config,) = calad.detection.plan(params)
    with tempfile.TemporaryDirectory() as tmp:
        store = calad.runs.ResultStore(Path(tmp) / "results")
        t = time.perf_counter()
        calad.detection.run_grid([config], preset="thesis", store=store, progress=False)
        one = time.perf_counter() - t
    rows.append({"what": f"thesis experiment fashion_mnist:0 {args.loss} ({args.experiment_epochs} epochs)",
                 "images": len(x), "seconds": round(one, 1), **stamp})
    print(f"one thesis experiment ({args.loss}, {args.experiment_epochs} epochs): {one / 60:.1f} min", flush=True)

    thesis = calad.config.resolve_params("05_detection", "thesis")
    n_classes = 10
    n = len(thesis["seeds"]) * n_classes
    scale = 200 / args.experiment_epochs
    total = sum(one * scale * per_loss[loss] / per_loss[args.loss] for loss in thesis["losses"]) * n
    rows.append({"what": f"projected thesis grid, Fashion-MNIST ({n * len(thesis['losses'])} experiments)",
                 "images": None, "seconds": round(total, 0), **stamp})
    print(f"projected Fashion-MNIST thesis grid: {total / 3600:.1f} h for {n * len(thesis['losses'])} experiments")
    out = Path(args.out)
    calad.runs.atomic_write_text(out, json.dumps(rows, indent=1))
    print(f"wrote {calad.paths.relative(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
