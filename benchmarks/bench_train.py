"""Benchmark: one training epoch of the same LeNet with the same augmentations, two ways.

* ``calad``: :func:`calad_lib.train.train` — images held as one tensor on the device,
  whole batches augmented there with :class:`calad_lib.data.Augment`. Timed
  conservatively: the whole call, including building the model, the z-score statistics
  and SVDD's initial forward pass for the centre.
* ``torchvision``: the peer repositories' pipeline — a ``Dataset`` that turns each image
  into a PIL image and applies ``transforms`` (ColorJitter, RandomHorizontalFlip,
  ToTensor, Gaussian noise via Lambda, Normalize), batched by a ``DataLoader``; the same
  network, loss and optimiser. Timed for the centre pass and the epoch, as the peer code's
  ``DeepSVDDTrainer.train`` does both (model building is not timed).

Both train Deep SVDD's bias-free LeNet on Fashion-MNIST (class 0, 6,000 images; random
images if the dataset is missing). It also times one epoch of every loss of §4.1 on the
current device (``--large`` adds the MVTec-size networks, meant for a GPU).

    .venv/bin/python benchmarks/bench_train.py [--n 6000] [--workers 0] [--large]

Prints the throughputs and their ratio, the data side alone (DataLoader vs batched
augmentation), and writes them to ``_build/benchmarks/train.json``. On a CPU the LeNet's
own forward/backward pass, which no data pipeline removes, is most of calad's epoch, so the
end-to-end ratio stays well below the data-side one: the centre pass and the epoch each
cost the baseline a trip through its PIL pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import calad_lib as calad


def load_normal(n: int) -> tuple[torch.Tensor, str]:
    try:
        x = calad.data.one_vs_all("fashion_mnist", 0, 0).full_train
        return x[:n], "fashion_mnist class 0"
    except Exception as exc:  # noqa: BLE001 - the benchmark still runs without the dataset
        print(f"Fashion-MNIST unavailable ({type(exc).__name__}); using random images")
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), "random"


def load_oe(n: int, channels: int, size: int) -> torch.Tensor:
    try:
        return calad.synthesis.oe_images(n, channels, size, seed=0, part="train")
    except Exception:  # noqa: BLE001
        return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1))


class PILImages(Dataset):
    """Fashion-MNIST the way torchvision and the peer code serve it: uint8 → PIL → transforms."""

    def __init__(self, x: torch.Tensor, transform):
        self.data = (x[:, 0] * 255).round().to(torch.uint8)
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i].numpy(), mode="L"))


def _add_noise(t: torch.Tensor) -> torch.Tensor:
    return (t + 0.01 * torch.randn_like(t)).clamp(0, 1)


def torchvision_epoch(x: torch.Tensor, workers: int, device) -> float:
    """Wall-clock and CPU seconds of the conventional pipeline: Deep SVDD's centre pass, then one epoch."""
    mean, std = calad.losses.input_stats(x)
    tf = transforms.Compose([transforms.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Lambda(_add_noise),
                             transforms.Normalize(mean.tolist(), std.tolist())])
    loader = DataLoader(PILImages(x, tf), batch_size=128, shuffle=True, num_workers=workers,
                        persistent_workers=False)
    torch.manual_seed(0)
    net = calad.nets.build_net("lenet28", (1, 28, 28), bias=False).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    t, cpu = time.perf_counter(), time.process_time()
    # Deep SVDD's centre as the peer code computes it (DeepSVDDTrainer.init_center_c): the mean output of
    # one no-grad pass over the training loader, transforms included, before the first epoch
    net.eval()
    with torch.no_grad():
        c = sum(net(xb.to(device)).sum(0) for xb in loader) / len(x)
    net.train()
    for xb in loader:
        xb = xb.to(device)
        if len(xb) < 2:
            continue
        loss = ((net(xb) - c) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - cpu


def data_only(x: torch.Tensor, workers: int, device) -> tuple[float, float]:
    """Seconds to produce one epoch of augmented, normalised batches: DataLoader vs :class:`calad.data.Augment`."""
    mean, std = calad.losses.input_stats(x)
    tf = transforms.Compose([transforms.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Lambda(_add_noise),
                             transforms.Normalize(mean.tolist(), std.tolist())])
    t = time.perf_counter()
    for xb in DataLoader(PILImages(x, tf), batch_size=128, shuffle=True, num_workers=workers):
        xb.to(device)
    loader = time.perf_counter() - t
    aug, xd = calad.data.Augment(jitter=0.1, noise_std=0.01, hflip=True), x.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    m, s = mean.to(device).view(1, -1, 1, 1), std.to(device).view(1, -1, 1, 1)
    t = time.perf_counter()
    order = torch.randperm(len(xd)).to(device)
    for a in range(0, len(xd), 128):
        (aug(xd[order[a:a + 128]], generator=g) - m) / s
    if device.type == "cuda":
        torch.cuda.synchronize()
    return loader, time.perf_counter() - t


def calad_epoch(loss: str, x: torch.Tensor, oe: torch.Tensor | None, device, **kw) -> float:
    """Wall-clock and CPU seconds of ``calad.train.train`` with one epoch (everything included, no cache)."""
    cfg = calad.train.TrainConfig(loss=loss, dataset=kw.pop("dataset", "fashion_mnist"), epochs=1, milestones=(),
                                  **kw)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t, cpu = time.perf_counter(), time.process_time()
    calad.train.train(cfg, x, oe, progress=False, device=device, cache=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - cpu


def main() -> None:
    warnings.simplefilter("ignore")   # as the performance chapter runs it: no warning machinery in either pipeline
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000, help="normal training images (default 6000)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the baseline (peer default 0)")
    ap.add_argument("--repeats", type=int, default=3, help="repeat each timing, keep the fastest")
    ap.add_argument("--large", action="store_true", help="also time the MVTec-size networks (for a GPU)")
    ap.add_argument("--skip-losses", action="store_true", help="skip the per-loss epoch times")
    args = ap.parse_args()

    threads = calad.device.configure_threads()
    device = calad.device.get_device()
    x, source = load_normal(args.n)
    n = len(x)
    print(f"device {device}, {threads} CPU threads, torch {torch.__version__}; {n} images ({source}); "
          f"load average {os.getloadavg()[0]:.1f}")

    calad_epoch("svdd", x[:256], None, device)                      # warm-up
    ours, base = [], []
    for _ in range(args.repeats):          # interleaved, fastest kept: robust to a busy machine
        ours.append(calad_epoch("svdd", x, None, device))
        base.append(torchvision_epoch(x, args.workers, device))
    (ours, ours_cpu), (base, base_cpu) = min(ours), min(base)
    ratio, cpu_ratio = base / ours, base_cpu / ours_cpu
    print(f"calad trainer (tensors + batched augmentation): {n / ours:7.0f} images/s "
          f"({ours:.2f} s/epoch, {ours_cpu:.2f} CPU s)")
    print(f"torchvision DataLoader + PIL transforms (w={args.workers}): {n / base:7.0f} images/s "
          f"({base:.2f} s/epoch, {base_cpu:.2f} CPU s)")
    print(f"speed-up: {ratio:.2f}x wall clock, {cpu_ratio:.2f}x CPU time (target >= 3x on the CPU)")
    loader_s, augment_s = min(data_only(x, args.workers, device) for _ in range(args.repeats))
    print(f"data side alone (one epoch of augmented batches): DataLoader {loader_s:.2f} s, batched Augment "
          f"{augment_s:.3f} s -> {loader_s / augment_s:.0f}x; the rest of an epoch is the network's "
          f"forward/backward pass (channels-last in the calad trainer)")

    oe = load_oe(n, 1, 28)
    per_loss = {}
    if not args.skip_losses:
        print(f"\none epoch of each loss on {device} ({n} normal images 28×28; supervised losses add as many OE "
              f"images):")
    for loss in () if args.skip_losses else calad.losses.LOSSES:
        sec = calad_epoch(loss, x, oe, device)[0]
        per_loss[loss] = round(sec, 3)
        print(f"  {loss:<11s} {sec:7.2f} s")
    large = {}
    if args.large:
        m = 256
        big = {224: torch.rand(m, 3, 224, 224), 256: torch.rand(m, 3, 256, 256)}
        print(f"\nMVTec-size networks, one epoch over {m} normal (+{m} OE) random images:")
        for loss, size in [("svdd", 224), ("hsc", 224), ("logistic", 224), ("ssim", 256), ("ssim_pixel", 256),
                           ("unet", 256), ("fcdd", 224)]:
            sec = calad_epoch(loss, big[size], big[size].flip(0), device, dataset="mvtec", batch_size=64,
                              amp=device.type == "cuda")[0]
            large[f"{loss}@{size}"] = round(sec, 3)
            print(f"  {loss:<11s} {size}px {sec:7.2f} s")

    out = calad.paths.build_dir() / "benchmarks" / "train.json"
    record = {"device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda"
              else platform.processor() or platform.machine(), "threads": threads, "torch": torch.__version__,
              "images": n, "data": source, "baseline_workers": args.workers,
              "calad_images_per_s": round(n / ours, 1), "torchvision_images_per_s": round(n / base, 1),
              "speedup": round(ratio, 2),
              "calad_cpu_seconds": round(ours_cpu, 2), "torchvision_cpu_seconds": round(base_cpu, 2),
              "speedup_cpu_time": round(cpu_ratio, 2), "data_only_seconds": {"dataloader": round(loader_s, 3),
              "batched_augment": round(augment_s, 4), "speedup": round(loader_s / augment_s, 1)},
              "epoch_seconds_per_loss": per_loss, "epoch_seconds_large": large,
              "load_average_1min": round(os.getloadavg()[0], 2), "provenance": calad.provenance.stamp()}
    calad.runs.atomic_write_text(out, json.dumps(record, indent=1))
    print(f"\nwrote {calad.paths.relative(out)}")


if __name__ == "__main__":
    main()
