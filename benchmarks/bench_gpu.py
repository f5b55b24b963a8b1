"""GPU timings for the thesis protocol: per-epoch time of every network, one thesis-preset experiment,
and the projected time of the whole thesis grid of chapter 05.

    .venv/bin/python benchmarks/bench_gpu.py [--experiment-epochs 200] [--out results/recorded/gpu_timings.json]

On a machine without a GPU it says so in one line and exits (status 0), writing nothing. On a GPU:

1. one epoch of every loss of §4.1 at the thesis' data sizes (Fashion-MNIST: 6,000 normal images of a
   class, as many OE images for the supervised losses; MVTec-size networks on 256 images of 224/256 px);
2. one experiment of the ``thesis`` preset of chapter 05 (Fashion-MNIST class 0, ``--loss``, seed 0, 200
   epochs unless ``--experiment-epochs`` says otherwise), end to end: training, calibration, evaluation;
3. the projection: the network epochs of the whole thesis grid per dataset (two networks per experiment,
   :func:`calad_lib.detection.recorded.grid_epochs`) times the measured epoch time of its networks, scaled
   by the training images (Fashion-MNIST 6,000 per class, CIFAR-10 5,000, MVTec AD and MPDD their mean
   train/good sizes, 242 and 148), and what the timed experiment spent beyond training.

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


#: classes of the datasets that need not be on this machine to be counted, and their mean train/good sizes
CLASSES = {"cifar10": 10, "mvtec": 15, "mpdd": 6}
TRAIN_IMAGES = {"mvtec": 242, "mpdd": 148}


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
    ap.add_argument("--check", action="store_true",
                    help="run every step at a tiny size on whatever device there is (to check the script, not to time)")
    args = ap.parse_args(argv)
    device = calad.device.get_device()
    if device.type != "cuda" and not args.check:
        print("no GPU: PyTorch sees no CUDA device here, so there is nothing to time (run this where a GPU is lent)")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} (check run)"
    rows: list[dict] = []
    stamp = {**calad.provenance.stamp("thesis"), "device": name}
    n_big, n_cifar = (2, 32) if args.check else (256, 5000)

    x = calad.data.one_vs_all("fashion_mnist", 0, 0).full_train[:256 if args.check else None]
    oe = calad.synthesis.oe_images(len(x), 1, 28, seed=0, part="train")
    per_loss = {}
    for loss in calad.losses.DETECTION_LOSSES:
        per_loss[loss] = epoch_seconds(loss, x, oe, device)
        rows.append({"what": f"epoch {loss}", "images": len(x), "seconds": round(per_loss[loss], 3), **stamp})
        print(f"epoch {loss:<10s} {per_loss[loss]:7.3f} s ({len(x)} images)", flush=True)
    big = torch.rand(n_big, 3, 256, 256)
    for loss, size in [("svdd", 224), ("hsc", 224), ("ssim_pixel", 256), ("unet", 256), ("fcdd", 224)]:
        size = 32 if args.check else size
        xs = big[..., :size, :size]
        sec = epoch_seconds(loss, xs, xs.flip(0), device, dataset="mvtec", batch_size=64, amp=True)
        rows.append({"what": f"epoch {loss} {size}px", "images": len(xs), "seconds": round(sec * 256 / len(xs), 3),
                     **stamp})
        print(f"epoch {loss:<10s} {size}px {sec * 256 / len(xs):7.3f} s (256 images)", flush=True)

    small = {"n_calib": 100, "head_epochs": 1, "n_test_normal": 50, "n_test_anomalous": 50, "n_heldout": 50,
             "n_oe": 100, "n_train": 100} if args.check else {}
    params = dict(calad.config.resolve_params("05_detection", "thesis",
                                              {"classes": [0], "losses": [args.loss], "seeds": [0],
                                               "extra_datasets": [], "epochs": args.experiment_epochs,
                                               "oe_source": "photos", **small}))
    (config,) = calad.detection.plan(params)
    with tempfile.TemporaryDirectory() as tmp:
        store = calad.runs.ResultStore(Path(tmp) / "results")
        t = time.perf_counter()
        calad.detection.run_grid([config], preset="thesis", store=store, progress=False)
        one = time.perf_counter() - t
    rows.append({"what": f"thesis experiment fashion_mnist:0 {args.loss} ({args.experiment_epochs} epochs)",
                 "images": len(x), "seconds": round(one, 1), **stamp})
    print(f"one thesis experiment ({args.loss}, {args.experiment_epochs} epochs): {one / 60:.1f} min", flush=True)

    # the whole grid: network epochs per dataset (two networks per experiment) times the measured epoch time of
    # its networks, scaled by the training images per epoch (3/4 split and full data averaged)
    thesis = calad.config.resolve_params("05_detection", "thesis")
    grid = calad.detection.recorded.grid_epochs(thesis, datasets=CLASSES)
    cifar = torch.rand(n_cifar, 3, 32, 32)
    cifar_epoch = sum(epoch_seconds(loss, cifar, cifar.flip(0), device, dataset="cifar10")
                      for loss in thesis["losses"]) / len(thesis["losses"]) * 5000 / len(cifar)
    fm_epoch = sum(per_loss[loss] for loss in thesis["losses"]) / len(thesis["losses"]) * 6000 / len(x)
    big_epoch = sum(r["seconds"] for r in rows if r["what"].endswith("px")) / sum(r["what"].endswith("px") for r in rows)
    per_epoch = {"fashion_mnist": fm_epoch * 7 / 8, "cifar10": cifar_epoch * 7 / 8,
                 "mvtec": big_epoch * TRAIN_IMAGES["mvtec"] / 256 * 7 / 8,
                 "mpdd": big_epoch * TRAIN_IMAGES["mpdd"] / 256 * 7 / 8}
    total = 0.0
    for ds in grid.index.drop("all"):
        sec = float(grid.loc[ds, "network epochs"]) * per_epoch[ds]
        total += sec
        rows.append({"what": f"projected training, thesis grid, {ds} ({int(grid.loc[ds, 'experiments'])} experiments)",
                     "images": None, "seconds": round(sec, 0), **stamp})
        print(f"projected {ds:<14s} {sec / 3600:7.1f} h ({int(grid.loc[ds, 'network epochs']):,d} network epochs)")
    rows.append({"what": f"projected training, whole thesis grid ({int(grid.loc['all', 'experiments'])} experiments)",
                 "images": None, "seconds": round(total, 0), **stamp})
    print(f"projected whole thesis grid: {total / 3600:.1f} h of training, plus calibration and evaluation "
          "(the timed experiment above shows their share)")
    out = Path(args.out)
    calad.runs.atomic_write_text(out, json.dumps(rows, indent=1))
    print(f"wrote {calad.paths.relative(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
