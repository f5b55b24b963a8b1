"""Benchmark: AUPRO over 100 masks of 256 × 256 (random blob masks, random maps) on the CPU.

Compares :func:`calad_lib.metrics.aupro` (exact, one partial sort) with the straightforward
per-threshold definition (:func:`calad_lib.aupro.aupro_slow` at 200 quantile thresholds of the
anomaly-free scores, as the original MVTec AD script did) and with the exact full-curve sort
(:func:`calad_lib.aupro.pro_curve`). Also times pixel AUROC (ranks) against scikit-learn. Goal: the fast AUPRO
under 1 s. Writes ``_build/benchmarks/metrics.json``.

    .venv/bin/python benchmarks/bench_metrics.py [--images 100] [--size 256] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from calad_lib import metrics
from calad_lib.metrics.aupro import aupro_slow, pro_curve, trapezoid_to
from calad_lib.device import configure_threads
from calad_lib.paths import build_dir, relative
from calad_lib.provenance import stamp


def blob_masks(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Masks with 0–3 random elliptic blobs each (the first one always has an anomaly)."""
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        for _ in range(int(rng.integers(1 if i == 0 else 0, 4))):
            cy, cx = rng.integers(0, size, 2)
            ry, rx = rng.integers(3, size // 8, 2)
            masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks


def best_of(fn, repeat: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slow-thresholds", type=int, default=200)
    args = ap.parse_args()
    threads = configure_threads()
    rng = np.random.default_rng(0)
    masks = blob_masks(rng, args.images, args.size)
    maps = (rng.random(masks.shape) + 0.3 * masks).astype(np.float32)
    pixels = masks.size

    t_fast, v_fast = best_of(lambda: metrics.aupro(masks, maps), args.repeat)
    t_curve, v_curve = best_of(lambda: trapezoid_to(*pro_curve(masks, maps)[:2], 0.3) / 0.3, 1)
    t_slow, v_slow = best_of(lambda: aupro_slow(masks, maps, thresholds=args.slow_thresholds), 1)
    t_auc, v_auc = best_of(lambda: metrics.pixel_auroc(masks, maps), 1)
    t_sk, v_sk = best_of(lambda: roc_auc_score(masks.ravel(), maps.ravel()), 1)

    rows = [("aupro (fast, exact)", t_fast, v_fast), ("full PRO curve (exact)", t_curve, v_curve),
            (f"per-threshold reference ({args.slow_thresholds} thresholds)", t_slow, v_slow),
            ("pixel AUROC (ranks, metrics.pixel_auroc)", t_auc, v_auc),
            ("pixel AUROC (scikit-learn roc_auc_score)", t_sk, v_sk)]
    print(f"AUPRO on {args.images} maps of {args.size}x{args.size} ({pixels / 1e6:.1f} M pixels), {threads} threads")
    for name, t, v in rows:
        print(f"  {name:<42s} {t:8.3f} s   {pixels / t / 1e6:7.1f} Mpixel/s   value {v:.5f}")
    print(f"  speed-up over the per-threshold reference: {t_slow / t_fast:.1f}x; "
          f"over the full-curve sort: {t_curve / t_fast:.1f}x; fast < 1 s: {t_fast < 1.0}")
    print(f"  pixel AUROC by ranks: {t_sk / t_auc:.1f}x faster than scikit-learn, |difference| = {abs(v_auc - v_sk):.1e}")
    print(f"  |fast - exact full curve| = {abs(v_fast - v_curve):.2e}; "
          f"|fast - {args.slow_thresholds}-threshold reference| = {abs(v_fast - v_slow):.2e}")

    out = build_dir() / "benchmarks" / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "aupro", "images": args.images, "size": args.size, "pixels": pixels, "threads": threads,
        "seconds": {"aupro_fast": t_fast, "pro_curve_full": t_curve, "aupro_slow": t_slow, "pixel_auroc": t_auc,
                    "pixel_auroc_sklearn": t_sk},
        "values": {"aupro_fast": v_fast, "pro_curve_full": v_curve, "aupro_slow": v_slow, "pixel_auroc": v_auc,
                   "pixel_auroc_sklearn": v_sk},
        "speedup_vs_slow": t_slow / t_fast, "goal_under_1s": t_fast < 1.0, **stamp("benchmark"),
    }, indent=2))
    print(f"wrote {relative(out)}")


if __name__ == "__main__":
    main()
