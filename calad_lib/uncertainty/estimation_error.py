"""Minimal estimation error can cause detection failures (Zhang et al., 2021, §4; the table of talk seed 004).

The true distribution ``P`` is uniform on ``N`` outcomes (the support, ids ``0 … N − 1``). A model
``P_θ`` that is *almost* ``P`` moves a mass ``ε`` off the support, uniformly onto ``k`` outside
outcomes (ids ``N … N + k − 1``):

    p_θ(x) = (1 − ε)/N on the support,   ε/k on the k outside outcomes,   0 elsewhere.

Out-of-distribution data ``Q`` is uniform on ``m`` outside outcomes (ids ``N … N + m − 1``; ``m = k``
for a model: the outcomes it moved mass to). Detection ranks by the score ``−log p_θ(x)``. Closed
forms (:func:`closed_form`):

* expected log-likelihood ``E_P[log p_θ] = log(1 − ε) − log N`` (so ``KL(P‖P_θ) = −log(1 − ε) ≈ ε``);
* mass on the support ``P_θ(supp P) = 1 − ε``;
* OOD AUROC ``= f·(1[ε/k < (1 − ε)/N] + ½·1[ε/k = (1 − ε)/N]) + (1 − f)`` with ``f = min(k, m)/m``
  the fraction of ``Q`` the model covers (outcomes with ``p_θ = 0`` rank above everything).

With ``N = 10⁶`` and ``(ε, k) = (10⁻², 10⁴), (10⁻³, 10³), (10⁻⁴, 10²)`` each outside outcome gets
``10⁻⁶ > (1 − ε)·10⁻⁶``: the model is within ``ε`` nats of perfect yet ranks every OOD outcome as
*more* likely than every in-distribution one — AUROC 0. :func:`monte_carlo` estimates the same
three numbers from samples; :func:`table` puts both side by side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import auroc

__all__ = ["Misestimated", "closed_form", "monte_carlo", "table", "TALK_MODELS", "TALK_TABLE", "N_SUPPORT"]

#: size of the true support in the talk's example
N_SUPPORT = 10**6
#: (ε, k) of the talk's three misestimated models
TALK_MODELS = ((1e-2, 10**4), (1e-3, 10**3), (1e-4, 10**2))
#: the talk's table as printed (seed 004): LL, Pr(supp(P)), OOD AUC per column
TALK_TABLE = pd.DataFrame({"True P": [-13.8155, 1.0, 1.0], "P_θ,10^4": [-13.8255, 0.99, 0.0],
                           "P_θ,10^3": [-13.8165, 0.999, 0.0], "P_θ,10^2": [-13.8156, 0.9999, 0.0]},
                          index=["LL", "Pr(supp(P))", "OOD AUROC"])


def _int(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class Misestimated:
    """``P_θ``: mass ``1 − ε`` uniform on ``n_support`` outcomes, ``ε`` uniform on ``n_outside`` others.

    ``outside_mass = 0`` (with any ``n_outside``) is the true ``P``. ``n_ood`` is the size ``m`` of
    the OOD distribution's outside set (default: ``n_outside``, or 10⁴ for the true ``P``).
    """

    n_support: int = N_SUPPORT
    outside_mass: float = 0.0
    n_outside: int = 0
    n_ood: int | None = None

    def __post_init__(self):
        _int("n_support", self.n_support, 1)
        _int("n_outside", self.n_outside, 0)
        eps = self.outside_mass
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < 1:
            raise ValueError(f"outside_mass must lie in [0, 1), got {eps!r}")
        if eps > 0 and self.n_outside < 1:
            raise ValueError("a model with outside_mass > 0 needs n_outside >= 1 outcomes to put it on")
        if self.n_ood is None:
            object.__setattr__(self, "n_ood", self.n_outside if self.n_outside > 0 else 10**4)
        _int("n_ood", self.n_ood, 1)

    @property
    def label(self) -> str:
        if self.outside_mass == 0:
            return "True P"
        e = math.log10(self.n_outside)
        return f"P_θ,10^{e:.0f}" if e == int(e) else f"P_θ,{self.n_outside}"

    def log_prob(self, x) -> np.ndarray:
        """``log p_θ(x)`` for outcome ids ``x`` (``−inf`` off the model's support), float64."""
        x = np.asarray(x)
        inside = (x >= 0) & (x < self.n_support)
        outside = (x >= self.n_support) & (x < self.n_support + self.n_outside) & (self.outside_mass > 0)
        out = np.full(x.shape, -np.inf)
        out[inside] = math.log1p(-self.outside_mass) - math.log(self.n_support)
        if self.outside_mass > 0:
            out[outside] = math.log(self.outside_mass) - math.log(self.n_outside)
        return out

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` outcome ids drawn from ``P_θ``."""
        off = rng.random(n) < self.outside_mass
        x = rng.integers(0, self.n_support, size=n)
        if off.any():
            x[off] = self.n_support + rng.integers(0, self.n_outside, size=int(off.sum()))
        return x

    def sample_true(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` ids from the true ``P`` (uniform on the support)."""
        return rng.integers(0, self.n_support, size=n)

    def sample_ood(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` ids from ``Q`` (uniform on the ``n_ood`` outside outcomes)."""
        return self.n_support + rng.integers(0, self.n_ood, size=n)


def closed_form(model: Misestimated) -> dict[str, float]:
    """Expected log-likelihood under ``P``, ``P_θ(supp P)`` and the OOD AUROC of ``−log p_θ``, exactly."""
    eps, n, k, m = model.outside_mass, model.n_support, model.n_outside, model.n_ood
    ll = math.log1p(-eps) - math.log(n)
    if eps == 0:
        auc = 1.0
    else:
        covered = min(k, m) / m
        p_in, p_out = (1 - eps) / n, eps / k
        # compare in log space: exact ties (ε/k = (1 − ε)/N) count one half
        d = (math.log(eps) - math.log(k)) - (math.log1p(-eps) - math.log(n))
        below = 0.5 if abs(d) < 1e-15 else (1.0 if p_out < p_in else 0.0)
        auc = covered * below + (1 - covered)
    return {"LL": ll, "Pr(supp(P))": 1.0 - eps, "OOD AUROC": auc, "KL(P||P_θ)": -math.log1p(-eps)}


def _auroc_from_logp(logp_in: np.ndarray, logp_ood: np.ndarray) -> float:
    """AUROC of the score ``−log p`` (``−log 0`` held at the largest finite float), scikit-learn."""
    big = np.finfo(np.float64).max
    s = np.minimum(-np.concatenate([logp_in, logp_ood]), big)
    return auroc(np.r_[np.zeros(len(logp_in)), np.ones(len(logp_ood))], s)


def monte_carlo(model: Misestimated, n_samples: int = 10**7, n_auroc: int = 10**5, seed: int = 0,
                chunk: int = 10**6) -> dict[str, float]:
    """Sample estimates of :func:`closed_form`'s numbers.

    ``LL``: mean ``log p_θ`` over ``n_samples`` draws from ``P``; ``Pr(supp(P))``: fraction of
    ``n_samples`` draws from ``P_θ`` that land on the support (standard error
    ``√(ε(1 − ε)/n)``, 3·10⁻⁵ for ε = 0.01 and n = 10⁷); ``OOD AUROC``: scikit-learn's AUROC of
    ``−log p_θ`` on ``n_auroc`` draws from ``P`` against ``n_auroc`` from ``Q``. Drawn in chunks.
    """
    n_samples, n_auroc, chunk = _int("n_samples", n_samples, 1), _int("n_auroc", n_auroc, 1), _int("chunk", chunk, 1)
    rng = np.random.default_rng(seed)
    ll_sum, on_support, done = 0.0, 0, 0
    while done < n_samples:
        b = min(chunk, n_samples - done)
        ll_sum += float(model.log_prob(model.sample_true(b, rng)).sum())
        on_support += int((model.sample(b, rng) < model.n_support).sum())
        done += b
    auc = _auroc_from_logp(model.log_prob(model.sample_true(n_auroc, rng)), model.log_prob(model.sample_ood(n_auroc, rng)))
    return {"LL": ll_sum / n_samples, "Pr(supp(P))": on_support / n_samples, "OOD AUROC": auc}


def table(models=None, *, n_samples: int = 10**7, n_auroc: int = 10**5, seed: int = 0) -> pd.DataFrame:
    """Closed form and Monte Carlo for each model (default: the true ``P`` and the talk's three).

    Rows ``LL``, ``Pr(supp(P))``, ``OOD AUROC``; columns a MultiIndex ``(model, "closed form" |
    "Monte Carlo" | "|difference|")``.
    """
    if models is None:
        models = [Misestimated()] + [Misestimated(outside_mass=e, n_outside=k) for e, k in TALK_MODELS]
    cols = {}
    for i, mdl in enumerate(models):
        cf, mc = closed_form(mdl), monte_carlo(mdl, n_samples, n_auroc, seed + i)
        rows = ["LL", "Pr(supp(P))", "OOD AUROC"]
        cols[(mdl.label, "closed form")] = [cf[r] for r in rows]
        cols[(mdl.label, "Monte Carlo")] = [mc[r] for r in rows]
        cols[(mdl.label, "|difference|")] = [abs(cf[r] - mc[r]) for r in rows]
    out = pd.DataFrame(cols, index=["LL", "Pr(supp(P))", "OOD AUROC"])
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out
