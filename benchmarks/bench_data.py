"""Throughput of calad's data pipeline (thesis §3.4, §4.2.1); prints numbers, asserts nothing.

* spectral images per second (``calad.synthesis.spectral``) at the book's shapes;
* augmented images per second: calad's batched tensor pipeline (``calad.data.Augment``)
  versus the peer repositories' way, a ``torchvision.transforms.Compose`` of PIL
  transforms applied image by image through a ``DataLoader`` — the same augmentations
  (colour jitter 0.1, Gaussian noise 0.01, horizontal flip) on the same images.

Run: ``.venv/bin/python benchmarks/bench_data.py [--quick] [--threads N]`` on an otherwise idle
machine (other busy processes make torch's thread pool stall). The numbers are also
written to ``_build/benchmarks/data.json`` for the book's performance page.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

import calad_lib as calad


def rate(fn, n_images: int, repeat: int = 3) -> float:
    """Best-of-``repeat`` images per second of ``fn()`` processing ``n_images``."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_images / best


class PILDataset(torch.utils.data.Dataset):
    """uint8 images in memory, PIL transforms per item (as torchvision's datasets do)."""

    def __init__(self, images: np.ndarray, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        a = self.images[i]
        im = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        return self.transform(im)


def pil_pipeline(jitter: float, noise_std: float) -> T.Compose:
    return T.Compose([
        T.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Lambda(lambda x: (x + noise_std * torch.randn_like(x)).clamp_(0, 1)),
    ])


def bench_augment(x: torch.Tensor, batch: int, workers: list[int]) -> dict:
    aug = calad.data.Augment(jitter=0.1, noise_std=0.01, hflip=True)
    g = torch.Generator().manual_seed(0)

    def batched():
        for i in range(0, len(x), batch):
            aug(x[i:i + batch], generator=g)

    out = {"batched": rate(batched, len(x))}
    u8 = (x * 255).round().to(torch.uint8).numpy()
    for w in workers:
        loader = DataLoader(PILDataset(u8, pil_pipeline(0.1, 0.01)), batch_size=batch, shuffle=False,
                            num_workers=w, persistent_workers=w > 0)

        def pil():
            for _ in loader:
                pass

        out[f"pil_workers{w}"] = rate(pil, len(x), repeat=2)
    out["ratio"] = out["batched"] / max(v for k, v in out.items() if k.startswith("pil"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images (a quick check)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: $CALAD_THREADS or all cores)")
    args = ap.parse_args()
    threads = calad.device.configure_threads(args.threads)
    dev = calad.device.get_device()
    scale = 0.2 if args.quick else 1.0
    result = {"device": dev.type, "threads": threads, "torch": torch.__version__, "cpu": platform.processor() or
              platform.machine(), "quick": args.quick, "spectral": {}, "augment": {}}

    print(f"calad data benchmark · device {dev.type} · {threads} threads · torch {torch.__version__}")
    print("\nspectral images (thesis §3.4)")
    for label, n, c, s in (("28x28 gray", 20000, 1, 28), ("32x32 rgb", 10000, 3, 32), ("256x256 rgb", 200, 3, 256)):
        n = max(10, int(n * scale))
        r = rate(lambda: calad.synthesis.spectral(n, channels=c, size=s, seed=0, device=dev), n)
        result["spectral"][label] = r
        print(f"  {label:<12} {r:>12,.0f} images/s")

    try:
        fm = calad.data.load("fashion_mnist", train=True).images
    except calad.data.DataNotFound:
        fm = torch.rand(60000, 1, 28, 28)
    cases = (("fashion-mnist 28x28 gray", fm[: int(12000 * scale)]),
             ("cifar-like 32x32 rgb", calad.synthesis.oe_images(int(6000 * scale), channels=3, size=32, seed=0)))
    workers = [0, min(2, os.cpu_count() or 1)]
    print("\naugmentation: colour jitter 0.1, Gaussian noise 0.01, horizontal flip; batches of 128 (thesis §4.2.1)")
    for label, x in cases:
        r = bench_augment(x.contiguous(), 128, workers)
        result["augment"][label] = r
        pil = ", ".join(f"PIL+DataLoader({k.removeprefix('pil_workers')} workers) {v:,.0f}"
                        for k, v in r.items() if k.startswith("pil"))
        print(f"  {label:<26} batched {r['batched']:>10,.0f} images/s · {pil} · ratio {r['ratio']:.1f}x")

    ratios = [r["ratio"] for r in result["augment"].values()]
    result["target_ratio"] = 4.0
    result["meets_target"] = bool(min(ratios) >= 4.0)
    print(f"\nbatched vs PIL pipeline: {min(ratios):.1f}x to {max(ratios):.1f}x (target >= 4x): "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    out = calad.paths.build_dir() / "benchmarks" / "data.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    calad.runs.atomic_write_text(out, json.dumps(result, indent=1))
    print(f"wrote {calad.paths.relative(out)}")


if __name__ == "__main__":
    main()
