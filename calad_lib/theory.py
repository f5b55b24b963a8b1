"""Numerical checks of the thesis' chapter 2 and appendix A: propriety, stationarity, calibration.

Every statement is decided by computation, never by the text that states it:

* :func:`risk_minimiser` — the η̂ minimising the conditional risk L(η, ψ(η̂)) (Definition 5)
  on a dense grid refined by bounded scalar minimisation; a loss is proper iff it returns η.
* :func:`stationarity_residual` — the stationarity conditions (2.10) and (2.12) with
  derivatives taken by central finite differences, in three forms: the CPE form (2.10),
  (2.12) *as printed* (λ′ evaluated at η) and (2.12) *corrected* (λ′ evaluated at ψ(η)).
* :func:`calibration_term` — L_c of the decomposition (2.9).
* :func:`check_sum_of_losses` — Propositions 1 and 2 (sums/averages of element-wise losses).
* :func:`population_calibration_error` — ECE and MCE (Definitions 9, 10) of a toy forecaster
  with known calibration, in closed form, to compare with sample estimates.

Losses are written as *composite* binary losses: partial losses λ₁(v), λ₀(v) on a
prediction space with link ψ: [0, 1] → V (identity for CPE losses), §2.4.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import integrate, optimize
from scipy.special import expit, logit

from . import metrics

__all__ = ["BinaryLoss", "LOSSES", "conditional_risk", "risk_minimiser", "stationarity_residual",
           "calibration_term", "second_derivative", "check_sum_of_losses", "joint_vs_marginals",
           "derivative", "Verdict", "ToyForecaster", "population_calibration_error", "check_propriety",
           "propriety_table", "verdict_table", "corrections_table", "toy_calibration_table", "bound"]

Array = np.ndarray


@dataclass(frozen=True)
class BinaryLoss:
    """A binary composite loss λ(y, v) = y λ₁(v) + (1 − y) λ₀(v) with link v = ψ(η̂) (§2.4.2)."""

    name: str
    lam1: Callable[[Array], Array]
    lam0: Callable[[Array], Array]
    link: Callable[[Array], Array]
    inverse_link: Callable[[Array], Array]
    composite: bool
    equation: str = ""
    thesis_claim: str = ""

    def partial(self, y: int, v: Array) -> Array:
        return self.lam1(v) if y == 1 else self.lam0(v)

    def cpe(self, y: int, q: Array) -> Array:
        """The loss as a function of the probability estimate η̂ = q: ℓ_y(q) = λ_y(ψ(q))."""
        return self.partial(y, self.link(q))


def _identity(x: Array) -> Array:
    return np.asarray(x, dtype=float)


def _hsc_lam1(v: Array) -> Array:
    v = np.asarray(v, dtype=float)
    return -np.log(-np.expm1(-v))  # −ln(1 − e^(−v)), stable for small v


LOSSES: dict[str, BinaryLoss] = {
    "log": BinaryLoss("log", lambda q: -np.log(q), lambda q: -np.log1p(-np.asarray(q)), _identity, _identity,
                      composite=False, equation="(2.11)", thesis_claim="the log loss (2.11) is strictly proper"),
    "logistic": BinaryLoss("logistic", lambda v: np.logaddexp(0.0, -np.asarray(v)),
                           lambda v: np.logaddexp(0.0, np.asarray(v)), logit, expit, composite=True,
                           equation="(2.15)", thesis_claim="the logistic loss (2.15) is strictly proper"),
    "hsc": BinaryLoss("hsc", _hsc_lam1, _identity, lambda q: -np.log1p(-np.asarray(q)),
                      lambda v: -np.expm1(-np.asarray(v)), composite=True, equation="(4.1)",
                      thesis_claim="the HSC loss (4.1) is not proper"),
    "brier": BinaryLoss("brier", lambda q: (1.0 - np.asarray(q)) ** 2, lambda q: np.asarray(q) ** 2,
                        _identity, _identity, composite=False, equation="Brier score (control)",
                        thesis_claim="the Brier score is strictly proper (known)"),
    "absolute": BinaryLoss("absolute", lambda q: 1.0 - np.asarray(q), _identity, _identity, _identity,
                           composite=False, equation="absolute error (negative control)",
                           thesis_claim="the absolute error is not proper (known)"),
}


def conditional_risk(loss: BinaryLoss, eta: Array, q: Array) -> Array:
    """L(η, η̂) = η ℓ₁(η̂) + (1 − η) ℓ₀(η̂) (§2.4.1), broadcasting η against η̂."""
    eta = np.asarray(eta, dtype=float)
    return eta * loss.cpe(1, q) + (1.0 - eta) * loss.cpe(0, q)


def risk_minimiser(loss: BinaryLoss, eta: Array, *, grid: int = 4001, margin: float = 1e-9) -> Array:
    """argmin over η̂ ∈ [margin, 1 − margin] of L(η, η̂), for each η.

    A dense grid locates the global minimum (so improper losses with boundary minima
    are found), then bounded Brent minimisation refines it inside the neighbouring cells.
    """
    eta = np.atleast_1d(np.asarray(eta, dtype=float))
    qs = np.linspace(margin, 1.0 - margin, grid)
    out = np.empty_like(eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        risks = conditional_risk(loss, eta[:, None], qs[None, :])
    for i, e in enumerate(eta):
        j = int(np.nanargmin(risks[i]))
        lo, hi = qs[max(j - 1, 0)], qs[min(j + 1, grid - 1)]
        res = optimize.minimize_scalar(lambda q: float(conditional_risk(loss, e, q)), bounds=(lo, hi),
                                       method="bounded", options={"xatol": 1e-12})
        cand = [(float(conditional_risk(loss, e, q)), q) for q in (res.x, qs[j])]
        out[i] = min(cand)[1]
    return out


def derivative(f: Callable[[Array], Array], x: Array, h: float = 1e-6) -> Array:
    """Central finite difference f′(x) with a step relative to |x|."""
    x = np.asarray(x, dtype=float)
    step = h * np.maximum(1.0, np.abs(x))
    return (f(x + step) - f(x - step)) / (2.0 * step)


def stationarity_residual(loss: BinaryLoss, eta: Array, form: str = "cpe") -> Array:
    """Residual of a stationarity condition; zero everywhere iff the condition holds.

    ``form``:
      * ``"cpe"`` — (2.10) on the CPE form ℓ_y(η̂) = λ_y(ψ(η̂)): (1 − η) ℓ₀′(η) + η ℓ₁′(η);
      * ``"composite"`` — (2.12) with λ′ evaluated at ψ(η), as Proposition 4's proof uses it:
        (1 − η) λ₀′(ψ(η)) + η λ₁′(ψ(η));
      * ``"as_printed"`` — (2.12) exactly as printed: (1 − η) λ₀′(η) + η λ₁′(η).
    """
    eta = np.asarray(eta, dtype=float)
    if form == "cpe":
        d1 = derivative(lambda q: loss.cpe(1, q), eta)
        d0 = derivative(lambda q: loss.cpe(0, q), eta)
    elif form == "composite":
        v = loss.link(eta)
        d1, d0 = derivative(loss.lam1, v), derivative(loss.lam0, v)
    elif form == "as_printed":
        d1, d0 = derivative(loss.lam1, eta), derivative(loss.lam0, eta)
    else:
        raise ValueError(f"unknown stationarity form {form!r}; use 'cpe', 'composite' or 'as_printed'")
    return (1.0 - eta) * d0 + eta * d1


def calibration_term(loss: BinaryLoss, eta: Array, q: Array) -> Array:
    """L_c(η, η̂) = L(η, η̂) − L(η, η), the calibration term of (2.9)."""
    return conditional_risk(loss, eta, q) - conditional_risk(loss, eta, eta)


def second_derivative(loss: BinaryLoss, eta: float, q: Array, h: float = 1e-4) -> Array:
    """∂²L(η, η̂)/∂η̂² by central differences (the uniqueness argument of Propositions 3, 4)."""
    q = np.asarray(q, dtype=float)
    f = lambda x: conditional_risk(loss, eta, x)  # noqa: E731
    return (f(q + h) - 2.0 * f(q) + f(q - h)) / h**2


def check_sum_of_losses(loss: BinaryLoss, etas: Array, *, average: bool = True, starts: int = 8,
                        seed: int = 0) -> dict[str, float]:
    """Propositions 1/2: minimise the expected sum (or average) of element-wise losses over η̂ ∈ [0,1]ⁿ.

    With conditionally independent labels Y_i ~ Be(η_i) the expected loss is
    Σ_i L_i(η_i, η̂_i) (scaled by 1/n for the average). Returns the largest distance of
    the minimiser from η over several random starts (small ⇒ minimiser is η and unique)
    and the spread between starts.
    """
    etas = np.asarray(etas, dtype=float)
    rng = np.random.default_rng(seed)
    scale = 1.0 / len(etas) if average else 1.0

    def risk(q: Array) -> float:
        return float(scale * np.sum(conditional_risk(loss, etas, q)))

    sols = []
    for _ in range(starts):
        q0 = rng.uniform(0.02, 0.98, size=len(etas))
        res = optimize.minimize(risk, q0, method="L-BFGS-B", bounds=[(1e-9, 1 - 1e-9)] * len(etas),
                                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000})
        sols.append(res.x)
    sols = np.array(sols)
    return {"max_error": float(np.max(np.abs(sols - etas))),
            "spread": float(np.max(sols.max(axis=0) - sols.min(axis=0))),
            "minimiser": sols[0]}


def joint_vs_marginals(p11: float, p10: float, p01: float, loss: BinaryLoss | None = None) -> dict[str, float]:
    """Two dependent binary labels with joint P(Y₁=a, Y₂=b): what does the summed loss learn?

    Returns the marginals, the minimiser of the expected summed loss, and the total
    variation distance between the joint and the product of the learnt marginals.
    """
    loss = loss or LOSSES["log"]
    p00 = 1.0 - p11 - p10 - p01
    if min(p00, p11, p10, p01) < 0:
        raise ValueError("joint probabilities must be non-negative and sum to at most 1")
    m1, m2 = p11 + p10, p11 + p01
    joint = np.array([p00, p01, p10, p11])

    def risk(q: Array) -> float:  # expectation over the *joint*; the sum only sees marginals
        total = 0.0
        for prob, (a, b) in zip(joint, [(0, 0), (0, 1), (1, 0), (1, 1)]):
            total += prob * (loss.cpe(a, q[0]) + loss.cpe(b, q[1]))
        return float(total)

    res = optimize.minimize(risk, np.array([0.5, 0.5]), method="L-BFGS-B", bounds=[(1e-9, 1 - 1e-9)] * 2,
                            options={"ftol": 1e-15, "gtol": 1e-12})
    q1, q2 = res.x
    product = np.array([(1 - q1) * (1 - q2), (1 - q1) * q2, q1 * (1 - q2), q1 * q2])
    return {"marginal_1": m1, "marginal_2": m2, "minimiser_1": float(q1), "minimiser_2": float(q2),
            "tv_joint_vs_product": float(0.5 * np.abs(joint - product).sum())}


def bound(x: float, tol: float) -> str:
    """``x`` for a sentence that reads the same on every machine: ``below tol`` when it is below ``tol``
    (round-off decides its digits there), else ``= x`` to two decimals."""
    return f"below {tol:.0e}".replace("e-0", "e-") if abs(x) < tol else f"= {x:.2f}"


@dataclass
class Verdict:
    """The outcome of checking one statement of the thesis against numbers."""

    statement: str
    claim: str
    holds: bool
    evidence: str
    correction: str = ""
    details: dict = field(default_factory=dict)
    proof_note: str = ""

    @property
    def word(self) -> str:
        return "CONFIRMED" if self.holds else "CONTRADICTED"

    def short(self) -> str:
        """One line without numbers: what is claimed and what the numbers decided."""
        text = f"{self.statement}: {self.word} — thesis: {self.claim}"
        if self.proof_note:
            text += " (statement holds; a step of its proof does not)"
        return text

    @property
    def note(self) -> str:
        """The correction the numbers force, or the proof step that fails (empty if neither)."""
        return self.correction or self.proof_note

    def line(self) -> str:
        text = f"{self.statement} — thesis: {self.claim} — {self.word} by the numbers: {self.evidence}"
        if self.correction:
            text += f" Corrected: {self.correction}"
        if self.proof_note:
            text += f" Proof note: {self.proof_note}"
        return text


# --- ECE / MCE of a toy forecaster with known calibration (Definitions 9, 10) ------------

@dataclass(frozen=True)
class ToyForecaster:
    """η ~ U(0, 1), Y | η ~ Be(η), forecast p = σ(t · σ⁻¹(η)).

    ``t = 1`` is perfectly calibrated; ``t > 1`` overconfident; ``t < 1`` underconfident.
    """

    temperature: float = 1.0

    def forecast(self, eta: Array) -> Array:
        return expit(self.temperature * logit(np.clip(eta, 1e-300, 1 - 1e-16)))

    def inverse(self, p: Array) -> Array:
        return expit(logit(np.clip(p, 1e-300, 1 - 1e-16)) / self.temperature)

    def sample(self, n: int, seed: int = 0) -> tuple[Array, Array, Array]:
        """(y, p, η) for n draws."""
        rng = np.random.default_rng(seed)
        eta = rng.uniform(0.0, 1.0, n)
        y = (rng.uniform(0.0, 1.0, n) < eta).astype(int)
        return y, self.forecast(eta), eta


def population_calibration_error(forecaster: ToyForecaster, n_bins: int = 10) -> dict[str, float]:
    """Population ECE and MCE (Definitions 9, 10, bins (η_k, η_{k+1}]) by exact integration.

    Bin k holds η in (g⁻¹(b_k), g⁻¹(b_{k+1})]; its mass is that interval's length,
    freq(B_k) = E[η | bin] (the interval's midpoint) and conf(B_k) = E[g(η) | bin].
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    lo_eta = forecaster.inverse(edges[:-1])
    hi_eta = forecaster.inverse(edges[1:])
    lo_eta[0], hi_eta[-1] = 0.0, 1.0
    ece, mce, gaps = 0.0, 0.0, []
    for lo, hi in zip(lo_eta, hi_eta):
        mass = hi - lo
        if mass <= 0:
            gaps.append(np.nan)
            continue
        freq = 0.5 * (lo + hi)
        conf = integrate.quad(lambda e: float(forecaster.forecast(np.array(e))), lo, hi,
                              epsabs=1e-13, epsrel=1e-12, limit=200)[0] / mass
        gap = abs(freq - conf)
        gaps.append(gap)
        ece += mass * gap
        mce = max(mce, gap)
    return {"ece": ece, "mce": mce, "gaps": np.array(gaps)}


# --- verdicts: the statements of chapter 2 and appendix A decided by the checks above -----

def check_propriety(loss: BinaryLoss, etas: Array, *, tol: float = 1e-6, delta: float = 0.05) -> dict[str, float | bool]:
    """All numerical evidence about the (strict) propriety of ``loss`` on a grid of η.

    * ``minimiser_error`` — max |argmin L(η, ·) − η|;
    * ``stationarity`` — max |residual| of (2.10) in CPE form;
    * ``min_calibration_term`` — min L_c over the grid (negative ⇒ improper);
    * ``min_gap_off_diagonal`` — min L_c over |η̂ − η| ≥ ``delta`` (> 0 ⇒ zero only at η̂ = η);
    * ``min_curvature`` — min ∂²L/∂η̂² at η̂ = η (> 0 ⇒ the minimiser is unique).
    """
    etas = np.asarray(etas, dtype=float)
    qs = np.linspace(0.005, 0.995, 199)
    with np.errstate(divide="ignore", invalid="ignore"):
        lc = calibration_term(loss, etas[:, None], qs[None, :])
    off = np.abs(qs[None, :] - etas[:, None]) >= delta
    curv = np.array([second_derivative(loss, e, e) for e in etas])
    out = {
        "minimiser_error": float(np.max(np.abs(risk_minimiser(loss, etas) - etas))),
        "stationarity": float(np.max(np.abs(stationarity_residual(loss, etas, "cpe")))),
        "min_calibration_term": float(np.nanmin(lc)),
        "min_gap_off_diagonal": float(np.nanmin(np.where(off, lc, np.inf))),
        "min_curvature": float(np.min(curv)),
    }
    out["proper"] = out["minimiser_error"] < tol and out["min_calibration_term"] > -tol
    out["strictly_proper"] = out["proper"] and out["min_gap_off_diagonal"] > 0 and out["min_curvature"] > 0
    return out


def verdict_loss(name: str, etas: Array, statement: str) -> Verdict:
    """Verdict on a propriety claim about one of :data:`LOSSES`."""
    loss = LOSSES[name]
    ev = check_propriety(loss, etas)
    claim = loss.thesis_claim
    claims_strict = "strictly proper" in claim
    claims_improper = "not proper" in claim or "improper" in claim
    holds = ev["strictly_proper"] if claims_strict else (not ev["proper"] if claims_improper else ev["proper"])
    evidence = (f"max |argmin L(η, ·) − η| {bound(ev['minimiser_error'], 1e-6)}; max |(2.10) residual| "
                f"{bound(ev['stationarity'], 1e-6)}; min L_c = {round(ev['min_calibration_term'], 4) + 0.0:.4f}; "
                f"min ∂²L/∂η̂² at η̂ = η: {round(ev['min_curvature'], 2) + 0.0:.2f}.")
    correction = ""
    if name == "hsc" and not holds:
        correction = ("the HSC loss (4.1) is strictly proper composite: it is the log loss composed with the "
                      "invertible link ψ(η̂) = −ln(1 − η̂), and λ₁′(v) = −e^(−v)/(1 − e^(−v)), not 1/(1 − e^(−v)).")
    return Verdict(statement, claim, holds, evidence, correction, details=ev)


def hsc_derivative_table(vs: Array = (0.1, 0.5, 1.0, 2.0, 5.0)) -> list[dict[str, float]]:
    """λ₁′(v) of HSC: finite differences vs the thesis' expression vs the corrected one (Prop. 5's proof)."""
    lam1 = LOSSES["hsc"].lam1
    rows = []
    for v in np.asarray(vs, dtype=float):
        rows.append({"v": v, "finite difference": float(derivative(lam1, v)),
                     "thesis: 1/(1−e^(−v))": float(1.0 / (1.0 - np.exp(-v))),
                     "corrected: −e^(−v)/(1−e^(−v))": float(-np.exp(-v) / (1.0 - np.exp(-v)))})
    return rows


def verdict_stationarity_2_12(etas: Array) -> Verdict:
    """Equation (2.12) as printed vs with λ′ evaluated at ψ(η), on the strictly proper logistic loss."""
    printed = float(np.max(np.abs(stationarity_residual(LOSSES["logistic"], etas, "as_printed"))))
    corrected = float(np.max(np.abs(stationarity_residual(LOSSES["logistic"], etas, "composite"))))
    holds = printed < 1e-6
    return Verdict("Definition 8, eq. (2.12)", "(1 − η) λ₀′(η) = −η λ₁′(η) holds for proper composite losses",
                   holds, f"on the logistic loss (strictly proper by Prop. 4) the printed form leaves a residual of "
                   f"{printed:.2f}; with λ′ evaluated at ψ(η), max |residual| {bound(corrected, 1e-6)}.",
                   "" if holds else "(1 − η) λ₀′(ψ(η)) = −η λ₁′(ψ(η)), the form the proof of Proposition 4 actually uses.",
                   details={"as_printed": printed, "corrected": corrected})


def verdict_sum_propositions(n_pixels: int = 16, seed: int = 0) -> tuple[Verdict, Verdict]:
    """Propositions 1 (average over pixels) and 2 (sum of two losses), and Prop. 2's inequality."""
    rng = np.random.default_rng(seed)
    etas = rng.uniform(0.02, 0.98, n_pixels)
    errs = {name: check_sum_of_losses(LOSSES[name], etas, average=True, seed=seed)
            for name in ("log", "logistic", "hsc", "brier")}
    worst = max(e["max_error"] for e in errs.values())
    spread = max(e["spread"] for e in errs.values())
    p1 = Verdict("Proposition 1", "the average of pixel-wise strictly proper losses is strictly proper",
                 worst < 1e-5 and spread < 1e-5,
                 f"for {n_pixels} independent pixels and four strictly proper losses, every one of 8 random starts "
                 f"reaches η̂ = η (max error {bound(worst, 1e-5)}, spread between starts {bound(spread, 1e-5)}).",
                 details={**{k: v["max_error"] for k, v in errs.items()}, "spread": spread})
    # Proposition 2: sum of two losses; its proof writes L ≤ L₁* + L₂*, which must be ≥.
    eta2 = np.array([0.3, 0.8])
    two = check_sum_of_losses(LOSSES["log"], eta2, average=False, seed=seed)
    qs = rng.uniform(0.001, 0.999, size=(20000, 2))
    total = conditional_risk(LOSSES["log"], eta2[None, :], qs).sum(axis=1)
    bayes = float(conditional_risk(LOSSES["log"], eta2, eta2).sum())
    below = int(np.sum(total < bayes - 1e-12))
    p2 = Verdict("Proposition 2", "the sum of two element-wise (strictly) proper losses is (strictly) proper",
                 two["max_error"] < 1e-5 and below == 0,
                 f"the minimiser of the summed log loss is η (error {bound(two['max_error'], 1e-5)}); over 20000 random η̂, "
                 f"L(γ, η̂) fell below L₁* + L₂* {below} times — the bound is L ≥ L₁* + L₂*.",
                 details={"count_below_bayes": below, "max_error": two["max_error"]},
                 proof_note="the step 'L(γ, γ̂) ≤ L₁*(γ₁) + L₂*(γ₂)' must read '≥' (it is a lower bound).")
    return p1, p2


def verdict_propositions(etas: Array, seed: int = 0, n_pixels: int = 16) -> list[Verdict]:
    """Verdicts on Propositions 1–5 and on equation (2.12), in the thesis' order (Propositions 1 and 2
    on ``n_pixels`` independent pixels)."""
    p1, p2 = verdict_sum_propositions(n_pixels=n_pixels, seed=seed)
    return [p1, p2,
            verdict_loss("log", etas, "Proposition 3"),
            verdict_loss("logistic", etas, "Proposition 4"),
            verdict_loss("hsc", etas, "Proposition 5"),
            verdict_stationarity_2_12(etas)]


# --- tables for the chapter ------------------------------------------------------------------

def propriety_table(etas: Array, names=None) -> pd.DataFrame:
    """One row per loss: the evidence of :func:`check_propriety`, rounded so that it reads the same on
    every machine (round-off noise below the last digit; no negative zeros), and the verdict."""
    rows = {}
    for name in names or LOSSES:
        ev = check_propriety(LOSSES[name], etas)
        rows[name] = {"min L_c": round(ev["min_calibration_term"], 4) + 0.0,
                      "min L_c, |η̂ − η| ≥ 0.05": round(ev["min_gap_off_diagonal"], 4) + 0.0,
                      "min ∂²L/∂η̂² at η̂ = η": round(ev["min_curvature"], 2) + 0.0,
                      "verdict": "strictly proper" if ev["strictly_proper"] else "proper" if ev["proper"] else "not proper"}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("loss")


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """The claims, what the thesis says, the verdict (``confirmed`` / ``contradicted``) and its evidence."""
    return pd.DataFrame([{"statement": v.statement, "thesis says": v.claim, "verdict": v.word.lower(),
                          "evidence": v.evidence} for v in verdicts]).set_index("statement")


def corrections_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """The statements whose text or proof the numbers correct, with the correction."""
    return pd.DataFrame([{"statement": v.statement, "verdict": v.word.lower(), "correction": v.note}
                         for v in verdicts if v.note]).set_index("statement")


def toy_calibration_table(temperatures, sample_sizes, n_bins: int = 10, seed: int = 0) -> pd.DataFrame:
    """Population ECE/MCE of :class:`ToyForecaster` (exact) beside the binned sample estimates of
    ``calad.metrics`` on seeded samples of each size; one row per (temperature, sample size)."""
    rows = []
    for t in temperatures:
        toy = ToyForecaster(t)
        pop = population_calibration_error(toy, n_bins)
        for n in sample_sizes:
            y, p, _ = toy.sample(n, seed=seed)
            rows.append({"t": float(t), "n": int(n), "population ECE": pop["ece"],
                         "sample ECE": metrics.ece(y, p, n_bins=n_bins),
                         "population MCE": pop["mce"], "sample MCE": metrics.mce(y, p, n_bins=n_bins)})
    out = pd.DataFrame(rows)
    out["|ECE error|"] = (out["sample ECE"] - out["population ECE"]).abs()
    return out
