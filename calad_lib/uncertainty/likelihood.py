"""Chapter 08, part A: when likelihoods fail. The "simpler" out-of-distribution images of Nalisnick et al.
(2019a) — scikit-learn's digits laid out like MNIST, constant and smooth images — chapter 08's test sets
(:func:`ood_sources`), and the AUROC of each test statistic on each source with the verdicts the chapter
draws from them (:func:`detection_table`, :func:`statistic_verdicts`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_digits

from ..metrics import auroc
from ..synthesis import oe_images, spectral, uniform_noise
from .density import likelihood_ratio, typicality

__all__ = ["SIMPLE_KINDS", "simple_images", "IN_DISTRIBUTION", "SOURCE_KEYS", "ood_sources", "bits_per_dim",
           "statistic_key", "detection_table", "statistic_verdicts"]

SIMPLE_KINDS = ("digits", "constant", "smooth")


# --- simple out-of-distribution images ---------------------------------------------------------
def _digits(n: int, size: int, g: np.random.Generator) -> torch.Tensor:
    d = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0).unsqueeze(1)   # 1797 × 1 × 8 × 8
    pick = torch.from_numpy(g.choice(len(d), size=n, replace=n > len(d)))
    inner = int(round(size * 20 / 28))                                                  # MNIST: 20×20 in 28×28
    x = F.interpolate(d[pick], size=(inner, inner), mode="bilinear", align_corners=False)
    lo = (size - inner) // 2
    return F.pad(x, (lo, size - inner - lo, lo, size - inner - lo))


def _smooth(n: int, size: int, g: np.random.Generator, sigma: float) -> torch.Tensor:
    noise = g.random((n, size, size))
    x = gaussian_filter(noise, sigma=(0, sigma, sigma), mode="wrap")
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    return torch.from_numpy(((x - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)).unsqueeze(1)


def simple_images(kind: str, n: int, size: int = 28, seed: int = 0, *, sigma: float = 3.0) -> torch.Tensor:
    """``n`` simple out-of-distribution images ``float32 (n, 1, size, size)`` in [0, 1] (Nalisnick et al., 2019a).

    * ``"digits"`` — scikit-learn's 8×8 digits (0–16) scaled to [0, 1], resized bilinearly to
      20×20 and centred in 28×28 (MNIST's layout; other sizes scale the box), drawn with replacement
      only if ``n`` exceeds the 1,797 images;
    * ``"constant"`` — one grey level per image, uniform in [0, 1];
    * ``"smooth"`` — uniform noise blurred by a Gaussian of ``sigma`` pixels (periodic borders) and
      stretched to [0, 1] per image.
    """
    if kind not in SIMPLE_KINDS:
        raise ValueError(f"unknown simple image kind {kind!r}; choose one of {', '.join(SIMPLE_KINDS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 or size < 8:
        raise ValueError(f"need an integer n >= 0 and size >= 8, got n={n!r}, size={size!r}")
    g = np.random.default_rng(int(seed))
    if kind == "digits":
        x = _digits(int(n), int(size), g)
    elif kind == "constant":
        x = torch.from_numpy(g.random(int(n)).astype(np.float32)).view(-1, 1, 1, 1).expand(-1, 1, size, size)
    else:
        x = _smooth(int(n), int(size), g, float(sigma))
    return x.clamp(0, 1).contiguous()


# --- chapter 08, part A: the test sets and what the statistics make of them ----------------------
#: the in-distribution test set of :func:`ood_sources`
IN_DISTRIBUTION = "Fashion-MNIST test"
#: record-friendly keys of the sources of :func:`ood_sources`
SOURCE_KEYS = {"Fashion-MNIST test": "fashion_mnist_test", "digits (sklearn)": "digits", "constant": "constant",
               "smooth": "smooth", "spectral": "spectral", "uniform noise": "uniform_noise",
               "OE photos (test)": "oe_photos"}


def ood_sources(test_images: torch.Tensor, n: int, *, seed: int = 0,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``n`` images of each test source, float32 ``(n, 1, 28, 28)`` in [0, 1], by name.

    :data:`IN_DISTRIBUTION`: a random draw (``generator``, else seeded by ``seed``) of
    ``test_images``; then scikit-learn's digits, constant, smooth (:func:`simple_images`),
    spectral images and uniform noise (thesis §3.4), and the test part of the OE photographs.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    kw = dict(channels=1, size=28, seed=seed, device="cpu")
    return {
        IN_DISTRIBUTION: test_images[torch.randperm(len(test_images), generator=g)[:n]],
        "digits (sklearn)": simple_images("digits", n, seed=seed),
        "constant": simple_images("constant", n, seed=seed),
        "smooth": simple_images("smooth", n, seed=seed),
        "spectral": spectral(n, **kw),
        "uniform noise": uniform_noise(n, **kw),
        "OE photos (test)": oe_images(n, part="test", **kw),
    }


def bits_per_dim(logp, dims: int = 28 * 28) -> np.ndarray:
    """``−log₂ p(x) / D`` from ``log p(x)`` in nats."""
    return -np.asarray(logp, dtype=np.float64) / (dims * math.log(2))


def statistic_key(label: str) -> str:
    """A record-friendly key of a statistic label: ``"ratio (perturbed bg)"`` → ``"ratio_perturbed_bg"``."""
    return "_".join(label.replace("(", " ").replace(")", " ").split())


def detection_table(logp: dict, train_logp, *, in_dist: str = IN_DISTRIBUTION, model: str = "model",
                    dims: int = 28 * 28) -> "pd.DataFrame":
    """Per out-of-distribution source: bits/dim, share above the test median and the AUROC of each statistic.

    ``logp[name][source]`` holds ``log p`` under the model ``model`` and each background ``name``;
    ``train_logp`` the model's log-likelihoods of training images (for typicality). Statistics,
    oriented so that larger means more anomalous: ``likelihood`` (``−log p``), ``typicality``
    (``−φ_typical``) and ``ratio (<background>)`` (``log p_θ0 − log p_θ``, "background" shortened
    to "bg"). AUROC: test images 0, source images 1 (below 0.5: the source looks *more* normal).
    """
    lp = logp[model]
    stats = {"likelihood": lambda s: -lp[s], "typicality": lambda s: -typicality(lp[s], train_logp)}
    for name in logp:
        if name != model:
            stats[f"ratio ({name.replace('background', 'bg').strip()})"] = \
                (lambda s, b=name: -likelihood_ratio(lp[s], logp[b][s]))
    rows = {}
    median = np.median(lp[in_dist])
    for s in lp:
        if s == in_dist:
            continue
        y = np.r_[np.zeros(len(lp[in_dist])), np.ones(len(lp[s]))]
        rows[s] = {"bits/dim": float(bits_per_dim(lp[s], dims).mean()),
                   "above test median": float((lp[s] > median).mean()),
                   **{k: auroc(y, np.r_[f(in_dist), f(s)]) for k, f in stats.items()}}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "source"
    return out


def statistic_verdicts(table: "pd.DataFrame", *, worse_by: float = 0.05) -> "pd.DataFrame":
    """The claims of part A, decided from :func:`detection_table`.

    A1: the likelihood ranks some source above the test data (AUROC < 0.5; Nalisnick et al.).
    Then, per remedy: how many of the failing sources it rescues (AUROC > 0.5) and on which
    sources it is clearly worse than the likelihood (by more than ``worse_by``). A remedy
    *holds* when it rescues every failing source and is clearly worse nowhere, *fails* when it
    rescues none (or there is nothing to rescue and it is worse somewhere), else is *mixed*.
    Columns ``key`` (``"a1"`` or :func:`statistic_key`), ``claim``, ``verdict``, ``detail`` and the
    margins ``count``, ``of``, ``mean_auroc``.
    """
    lik = table["likelihood"]
    fails = lik.index[lik < 0.5].tolist()
    rows = [{"key": "a1", "claim": "A1 the likelihood ranks a simpler source above its own test images",
             "verdict": (f"holds: {len(fails)} of {len(table)} sources" if fails
                         else f"not reproduced at this scale: 0 of {len(table)} sources"),
             "detail": (", ".join(f"{s} (AUROC {lik[s]:.2f})" for s in fails) or
                        f"lowest AUROC {lik.min():.2f}"),
             "count": len(fails), "of": len(table), "mean_auroc": float(lik.mean())}]
    for k in [c for c in table.columns if c not in ("bits/dim", "above test median", "likelihood")]:
        fixed = [s for s in fails if table.loc[s, k] > 0.5]
        worse = table.index[table[k] < lik - worse_by].tolist()
        if fails and len(fixed) == len(fails) and not worse:
            v = "holds"
        elif (fails and not fixed) or (not fails and worse):
            v = "fails"
        elif not fails:
            v = "holds"
        else:
            v = "mixed"
        rows.append({"key": statistic_key(k), "claim": f"A {k} rescues the likelihood's failures and loses nowhere",
                     "verdict": f"{v}: rescues {len(fixed)} of {len(fails)}",
                     "detail": (f"mean AUROC {table[k].mean():.2f} (likelihood {lik.mean():.2f}); clearly worse on "
                                f"{', '.join(worse) or 'no source'}"),
                     "count": len(fixed), "of": len(fails), "mean_auroc": float(table[k].mean())})
    return pd.DataFrame(rows)
