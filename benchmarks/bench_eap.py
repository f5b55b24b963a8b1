"""Throughput of EAP's pieces and of the thirteen quality scores on one protocol split.

Run: ``.venv/bin/python benchmarks/bench_eap.py [--dataset digits:0] [--repeats 3]``. Prints
candidates per second of the chunked rarity score against a naive broadcast baseline
measured in the same run, and seconds per method for scoring one auxiliary set.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import calad_lib as calad


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def naive_rarity(X, radii, C):
    D = np.linalg.norm(C[:, None, :] - X[None, :, :], axis=-1)
    r = np.where(D <= radii[None, :], radii[None, :], np.inf).min(1)
    return np.where(np.isfinite(r), r, 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits:0")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    E = calad.eap
    s = E.datasets.make_split(args.dataset, 0, features="pca")
    print(f"{args.dataset}: n = {len(s.y_train)}, d = {s.X_train.shape[1]}, l = {len(s.X_aux)}")
    rar = E.Rarity(k=10).fit(s.X_train)
    C = np.vstack([s.X_aux] * 4)
    t_ours = best_of(lambda: rar.score(C), args.repeats)
    t_naive = best_of(lambda: naive_rarity(rar.X_, rar.radii_, C), args.repeats)
    assert np.allclose(rar.score(C), naive_rarity(rar.X_, rar.radii_, C))
    print(f"rarity: {len(C) / t_ours:,.0f} candidates/s (naive broadcast {len(C) / t_naive:,.0f}/s, "
          f"ratio {t_naive / t_ours:.1f}x)")
    det = E.SSDO(k=10, random_state=0).fit(s.X_train, s.y_train)
    t_k = best_of(lambda: E.estimate_k(s.X_train, s.y_train), args.repeats)
    print(f"k_hat estimation: {t_k:.3f} s")
    for name in E.METHODS:
        method = E.get_method(name)
        t = best_of(lambda: method.score_auxiliary(s.X_train, s.y_train, s.X_aux, detector=det), args.repeats)
        print(f"{name:12s} {t:8.3f} s per auxiliary set")


if __name__ == "__main__":
    main()
