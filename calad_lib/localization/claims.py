"""The claims of thesis §4.3.2 on localization, and what the location-adaptive calibrators change, as verdicts
and sentences decided by code from the numbers they print as evidence."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..records import finite
from .experiment import LOSS_LABELS, METHOD_LABELS

__all__ = ["verdicts", "verdict_summary", "verdict_margins", "adaptive_gains", "mechanisms", "mechanisms_text",
           "adaptive_text"]


def _paired(df: pd.DataFrame, a: str, b: str, col: str) -> tuple[float, float, int, int]:
    """Mean of ``col`` for methods ``a`` and ``b`` and how often ``a`` beats ``b`` over paired runs."""
    p = df.pivot_table(index=["dataset", "seed"], columns="method", values=col)
    if a not in p or b not in p:
        return float("nan"), float("nan"), 0, 0
    both = p[[a, b]].dropna()
    return float(both[a].mean()), float(both[b].mean()), int((both[a] > both[b]).sum()), len(both)


def verdicts(df: pd.DataFrame, *, tol: float = 0.005, marginal: float = 0.02) -> pd.DataFrame:
    """Each claim of §4.3.2 (and the adaptive question) per loss, with the evidence and a verdict.

    ``tol``: a difference of pixel AUROC/AUPRO below it counts as "no change"; ``marginal``: the largest
    mean perturbation gain still called marginal. Values are fractions (0.005 = half a point). The adaptive
    calibrators are compared with ``base`` — the ranking every increasing per-pixel transform keeps (a
    Platt fit with a negative slope reverses it) — and with the fully trained network, run by run.

    Besides ``claim``, ``loss``, ``evidence`` and ``verdict`` each row has a short ``key`` and the
    ``margin`` of its decision (a fraction): how far the deciding number lies from the threshold, positive
    where the claim holds. A verdict is only as firm as its margin is large against the spread of the
    numbers between runs and machines.
    """
    out = []

    def add(key, claim, loss, evidence, holds, margin):
        out.append({"claim": claim, "loss": LOSS_LABELS.get(loss, loss), "evidence": evidence,
                    "verdict": "n/a" if holds is None else ("holds" if holds else "does not hold"),
                    "key": key, "margin": float(margin)})

    posthoc = [m for m in ("platt_oe", "platt_spectral", "beta_oe", "beta_spectral") if m in set(df.method)]
    adaptive = [m for m in ("local_oe", "local_spectral", "local_network_oe", "local_network_spectral") if m in set(df.method)]
    for loss, g in df.groupby("loss", sort=False):
        mean = g.groupby("method").mean(numeric_only=True)
        have = set(mean.index)
        if "fully_trained" in have and posthoc:
            ft = mean.loc["fully_trained"]
            best = mean.loc[posthoc, ["pixel_auroc", "aupro"]].max()
            best_p = mean.loc[posthoc, ["pixel_auroc_perturbed", "aupro_perturbed"]].max()
            add("posthoc_no_gain", "per-pixel Platt/β do not improve localization over the fully trained model",
                loss, f"AUROC {100 * ft.pixel_auroc:.1f} vs best post-hoc {100 * best.pixel_auroc:.1f}; "
                f"AUPRO {100 * ft.aupro:.1f} vs {100 * best.aupro:.1f}",
                bool(best.pixel_auroc <= ft.pixel_auroc + tol and best.aupro <= ft.aupro + tol),
                min(ft.pixel_auroc + tol - best.pixel_auroc, ft.aupro + tol - best.aupro))
            add("perturbed_no_overcome", "perturbing post-hoc models does not overcome the deficit", loss,
                f"perturbed best post-hoc AUROC {100 * best_p.pixel_auroc_perturbed:.1f}, AUPRO "
                f"{100 * best_p.aupro_perturbed:.1f} vs fully trained {100 * ft.pixel_auroc:.1f}, {100 * ft.aupro:.1f}",
                bool(best_p.pixel_auroc_perturbed <= ft.pixel_auroc + tol and best_p.aupro_perturbed <= ft.aupro + tol),
                min(ft.pixel_auroc + tol - best_p.pixel_auroc_perturbed, ft.aupro + tol - best_p.aupro_perturbed))
        cols = [m for m in ["fully_trained", *posthoc] if m in have]
        if cols and "pixel_auroc_perturbed" in mean:
            gain = (mean.loc[cols, "pixel_auroc_perturbed"] - mean.loc[cols, "pixel_auroc"])
            gain_pro = (mean.loc[cols, "aupro_perturbed"] - mean.loc[cols, "aupro"])
            top = max(gain.max(), gain_pro.max())
            add("perturbation_marginal", "perturbation gains are marginal", loss,
                f"mean gain AUROC {100 * gain.mean():+.2f}, AUPRO {100 * gain_pro.mean():+.2f} points "
                f"(largest {100 * top:+.2f})", bool(top < marginal), marginal - top)
            add("perturbation_every_model", "perturbation improves every model", loss,
                f"{int((gain > 0).sum())}/{len(gain)} AUROC and {int((gain_pro > 0).sum())}/{len(gain_pro)} "
                "AUPRO gains > 0", bool((gain > 0).all() and (gain_pro > 0).all()), min(gain.min(), gain_pro.min()))
        if loss == "unet" and "fully_trained" in have and posthoc:
            ft = mean.loc["fully_trained"]
            ece, mce = mean.loc[posthoc, "pixel_ece"].min(), mean.loc[posthoc, "pixel_mce"].min()
            add("lgs_fully_trained_calibrated",
                "for the logistic loss the fully trained model is better calibrated than post-hoc", loss,
                f"ECE {100 * ft.pixel_ece:.2f} vs best post-hoc {100 * ece:.2f}; "
                f"MCE {100 * ft.pixel_mce:.1f} vs {100 * mce:.1f}",
                bool(ft.pixel_ece < ece and ft.pixel_mce < mce), min(ece - ft.pixel_ece, mce - ft.pixel_mce))
        shared = "base" if "base" in have else "platt_spectral"
        if shared in have and "location_platt_spectral" in have:
            a, b, wins, n = _paired(g, "location_platt_spectral", shared, "pixel_auroc")
            add("location_platt_lowers", "one Platt per location lowers pixel AUROC (a reading of the thesis' drop)",
                loss, f"AUROC {100 * a:.1f} vs {100 * b:.1f} for the ranking a shared Platt keeps ({shared}); "
                f"higher in {wins}/{n} runs", bool(a < b - tol), b - tol - a)
        refs = {"base": "the per-pixel Platt/β ranking (base)", "fully_trained": "the fully trained network"}
        if "base" not in have and "platt_spectral" in have:
            refs = {"platt_spectral": "per-pixel Platt (spectral)", "fully_trained": refs["fully_trained"]}
        for ref, ref_name in refs.items():
            if ref not in have or not adaptive:
                continue
            best = max(adaptive, key=lambda m: mean.loc[m, "pixel_auroc"])
            a, b, wins, n = _paired(g, best, ref, "pixel_auroc")
            a2, b2, wins2, _ = _paired(g, best, ref, "aupro")
            add("adaptive_vs_" + ("fully_trained" if ref == "fully_trained" else "per_pixel"),
                f"the best adaptive calibrator ({best}) localizes better than {ref_name}", loss,
                f"AUROC {100 * a:.1f} vs {100 * b:.1f} (better in {wins}/{n}); AUPRO {100 * a2:.1f} vs "
                f"{100 * b2:.1f} (better in {wins2}/{n})", bool(a > b + tol and a2 > b2 + tol),
                min(a - b - tol, a2 - b2 - tol))
    return pd.DataFrame(out, columns=["claim", "loss", "evidence", "verdict", "key", "margin"])


#: what the verdict summary calls each claim
_SUMMARY = {"posthoc_no_gain": "per-pixel Platt/β do not improve on the fully trained network",
            "perturbed_no_overcome": "perturbing them does not overcome the deficit",
            "perturbation_marginal": "perturbation gains are marginal (below two points)",
            "perturbation_every_model": "perturbation improves every model",
            "lgs_fully_trained_calibrated": "the fully trained LGS network is better calibrated",
            "location_platt_lowers": "one Platt per location lowers pixel AUROC",
            "adaptive_vs_per_pixel": "the best adaptive calibrator beats the per-pixel ranking (base)",
            "adaptive_vs_fully_trained": "the best adaptive calibrator beats the fully trained network"}


def verdict_summary(verdict: pd.DataFrame) -> str:
    """Markdown: for each claim of :func:`verdicts`, in how many losses it holds (and which)."""
    lines = []
    for key, g in verdict.groupby("key", sort=False):
        held = g[g.verdict == "holds"]
        which = f" ({', '.join(held.loss)})" if 0 < len(held) < len(g) else ""
        unit = "loss" if len(g) == 1 else "losses"
        lines.append(f"* {_SUMMARY.get(key, key)}: holds for **{len(held)} of {len(g)}** {unit}{which}")
    return "In our runs:\n\n" + "\n".join(lines)


def verdict_margins(verdict: pd.DataFrame) -> dict:
    """``{loss: {key: margin}}`` (fractions, positive where the claim holds), for ``calad.record``."""
    out: dict = {}
    for r in verdict.itertuples():
        out.setdefault(str(r.loss).lower(), {})[r.key] = r.margin
    return finite(out)


# ---------------------------------------------------------------------------------------------
# what the chapter shows: HTML tables, comparisons with the thesis, records
#: metric labels where lower is better (bold marks the lowest)
_ADAPTIVE = ("location_platt_oe", "location_platt_spectral", "local_oe", "local_spectral", "local_network_oe",
             "local_network_spectral")


def adaptive_gains(df: pd.DataFrame, ref: str = "base", *, raw: bool = False):
    """Each adaptive calibrator against ``ref`` (the ranking per-pixel Platt/β keep), paired run by run:
    rows (loss, model), mean gain of pixel AUROC and AUPRO in points and in how many runs it is positive.

    ``raw=True`` returns ``{loss: {method: {"pixel_auroc": gain, "aupro": gain}}}`` in fractions instead
    (for ``calad.record``).
    """

    methods = [m for m in _ADAPTIVE if m in set(df.method)]
    rows, gains = [], {}
    for loss, g in df.groupby("loss", sort=False):
        w = g.pivot_table(index=["dataset", "seed"], columns="method", values=["pixel_auroc", "aupro"])
        if ref not in w["pixel_auroc"]:
            continue
        for m in methods:
            da = (w["pixel_auroc"][m] - w["pixel_auroc"][ref]).dropna()
            dp = (w["aupro"][m] - w["aupro"][ref]).dropna()
            gains.setdefault(loss, {})[m] = {"pixel_auroc": float(da.mean()), "aupro": float(dp.mean())}
            rows.append({"loss": LOSS_LABELS.get(loss, loss), "model": METHOD_LABELS.get(m, m),
                         "AUROC gain": 100 * da.mean(), "AUPRO gain": 100 * dp.mean(),
                         "runs better (AUROC)": f"{int((da > 0).sum())}/{len(da)}",
                         "runs better (AUPRO)": f"{int((dp > 0).sum())}/{len(dp)}"})
    if raw:
        return finite(gains)
    return pd.DataFrame(rows, columns=["loss", "model", "AUROC gain", "AUPRO gain", "runs better (AUROC)",
                                       "runs better (AUPRO)"]).set_index(["loss", "model"])


def mechanisms(df: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """The two candidate mechanisms of the thesis' large drops, per loss, in points of pixel AUROC:
    Platt per location against ``base`` (per source) and the largest change from ranking by float32 η̂."""
    means = df.groupby(["loss", "method"]).mean(numeric_only=True)
    methods = list(methods or dict.fromkeys(df.method))
    rows = []
    for loss in dict.fromkeys(df.loss):
        r = {"loss": LOSS_LABELS.get(loss, loss)}
        for m, label in (("location_platt_oe", "Platt/location OE − base"),
                         ("location_platt_spectral", "Platt/location Spectral − base")):
            if (loss, m) in means.index and (loss, "base") in means.index:
                r[label] = 100 * (means.loc[(loss, m), "pixel_auroc"] - means.loc[(loss, "base"), "pixel_auroc"])
        ties = [100 * (means.loc[(loss, m), "pixel_auroc_eta32"] - means.loc[(loss, m), "pixel_auroc"])
                for m in methods if (loss, m) in means.index]
        r["float32 ties: largest change"] = max(ties, key=abs) if ties else float("nan")
        rows.append(r)
    return pd.DataFrame(rows).set_index("loss")


def mechanisms_text(mech: pd.DataFrame, *, small: float = 0.5) -> str:
    """Markdown deciding, from :func:`mechanisms`, which mechanism moves pixel AUROC by more than ``small`` points."""
    loc = mech.filter(like="Platt/location")
    ties = mech["float32 ties: largest change"].abs()
    parts = []
    if loc.size and loc.notna().any().any():
        worst = loc.min(axis=1)
        down = [f"{l} ({v:+.1f})" for l, v in worst.items() if v < -small]
        parts.append("One Platt per location lowers pixel AUROC by more than half a point for "
                     + (", ".join(down) if down else "none of the losses")
                     + f" (its changes range from {loc.min().min():+.1f} to {loc.max().max():+.1f} points).")
    big = [f"{l} ({v:.1f})" for l, v in ties.items() if v > small]
    parts.append("Ranking by float32 probabilities changes pixel AUROC by more than half a point for "
                 + (", ".join(big) if big else "none of the losses")
                 + f" (largest change {ties.max():.1f} points).")
    return " ".join(parts)


def adaptive_text(df: pd.DataFrame, ref: str = "base") -> str:
    """Markdown from :func:`adaptive_gains`: per loss the adaptive calibrator with the largest mean pixel
    AUROC gain over ``ref``, and how the network-feature calibrator's two sources compare where both were run."""

    gains = adaptive_gains(df, ref, raw=True)
    if not gains:
        return f"No adaptive calibrator was run beside `{ref}`."
    parts = []
    for loss, g in gains.items():
        best = max(g, key=lambda m: g[m]["pixel_auroc"])
        parts.append(f"{LOSS_LABELS.get(loss, loss)}: {METHOD_LABELS.get(best, best)} "
                     f"({100 * g[best]['pixel_auroc']:+.1f} AUROC, {100 * g[best]['aupro']:+.1f} AUPRO)")
    text = f"Largest mean gain in pixel AUROC over `{ref}`, per loss — " + "; ".join(parts) + "."
    both = [loss for loss, g in gains.items() if {"local_network_oe", "local_network_spectral"} <= set(g)]
    if both:
        oe = [loss for loss in both if gains[loss]["local_network_oe"]["pixel_auroc"] > gains[loss]["local_network_spectral"]["pixel_auroc"]]
        text += (f" The local calibrator on network features gains more pixel AUROC from OE patches than from spectral ones for "
                 f"{len(oe)} of {len(both)} losses.")
    elif any(m.startswith("local_network_") for g in gains.values() for m in g):
        text += " This preset fits the local calibrator on network features on one source only."
    return text
