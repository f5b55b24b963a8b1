"""Localization results as tables and verdicts: Table 4.3's layout, the thesis' Tables 4.3 and C.1–C.12, §4.3.2.

Reads the rows of :func:`calad_lib.localization.run_grid` (one per run × method) and the transcribed
thesis tables in ``calad_lib/thesis_tables/``; every verdict on a claim of §4.3.2 is decided here by
code from the numbers it prints as evidence.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from .localization import _TABLE_DIR, _THESIS_LOSS, LOSS_LABELS, LOSSES, METHODS, PAPER_METHODS

__all__ = ["table_4_3", "thesis_table_4_3", "thesis_per_class", "thesis_layout", "thesis_class_counts", "verdicts",
           "EXTRA_ROWS", "LOWER_IS_BETTER", "DATA_LABELS", "styled", "thesis_by_dataset", "class_counts_table",
           "per_loss", "side_by_side", "describe_grid", "headline", "fitted_params", "adaptive_gains",
           "mechanisms", "mechanisms_text", "adaptive_text", "verdict_summary", "verdict_margins"]

# --- tables --------------------------------------------------------------------------------------
_METRIC_ROWS = [("pixel_auroc", "AUROC"), ("pixel_auroc_perturbed", "AUROC perturbed"), ("aupro", "AUPRO"),
                ("aupro_perturbed", "AUPRO perturbed"), ("pixel_mce", "MCE"), ("pixel_ece", "ECE")]


#: labels of the extra rows :func:`table_4_3` can add
EXTRA_ROWS = {"pixel_ece_patch": "ECE pasted", "pixel_mce_patch": "MCE pasted", "rank_corr": "rank corr",
              "pixel_auroc_eta32": "AUROC float32 η̂", "kappa": "κ"}


def table_4_3(df: pd.DataFrame, methods: Sequence[str] | None = None, *, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Our results in the layout of Table 4.3: % means over classes and seeds; rows (family, loss, metric).

    ``extra`` adds metric rows (columns of ``df``, labelled by :data:`EXTRA_ROWS`, e.g. ``"pixel_ece_patch"``).
    Methods are columns in ``methods`` order.
    """
    methods = [m for m in (methods or METHODS) if m in set(df["method"])]
    rows = _METRIC_ROWS + [(e, EXTRA_ROWS.get(e, e)) for e in extra]
    parts = []
    order = {loss: i for i, loss in enumerate(LOSSES)}
    for (family, loss), g in sorted(df.groupby(["family", "loss"], sort=False),
                                    key=lambda kv: (kv[0][0], order.get(kv[0][1], len(order)))):
        means = g.groupby("method")[[r for r, _ in rows]].mean() * 100
        for col, label in rows:
            parts.append(pd.Series(means[col].reindex(methods).to_numpy(), index=methods,
                                   name=(family, LOSS_LABELS.get(loss, loss), label)))
    out = pd.DataFrame(parts)
    out.index = pd.MultiIndex.from_tuples(out.index, names=["data", "loss", "metric"])
    return out


def thesis_table_4_3() -> pd.DataFrame:
    """The thesis' Table 4.3 (transcribed; %), long format: dataset, loss, metric, perturbed, one column per method."""
    return pd.read_csv(_TABLE_DIR / "table_4_3.csv")


def thesis_layout(thesis: pd.DataFrame | None = None) -> pd.DataFrame:
    """The thesis' Table 4.3 in the layout of :func:`table_4_3` (rows: data, loss, metric)."""
    t = thesis_table_4_3() if thesis is None else thesis
    name = {v: LOSS_LABELS[k] for k, v in _THESIS_LOSS.items()}
    label = dict(_METRIC_ROWS)
    idx = [(r.dataset, name[r.loss], label[r.metric + ("_perturbed" if r.perturbed else "")]) for r in t.itertuples()]
    out = t[list(PAPER_METHODS)].copy()
    out.index = pd.MultiIndex.from_tuples(idx, names=["data", "loss", "metric"])
    return out


def thesis_per_class(dataset: str, loss: str, metric: str) -> pd.DataFrame:
    """One of the thesis' Tables C.1–C.12 (%): ``dataset`` ``mvtec``/``mpdd``, our ``loss`` name, ``metric``
    ``pixel_auroc``/``aupro``; columns class, perturbed and the five methods."""
    index = pd.read_csv(_TABLE_DIR / "table_c_index.csv")
    th_loss = _THESIS_LOSS.get(loss, loss)
    hit = index[(index.dataset == dataset) & (index.loss == th_loss) & (index.metric == metric)]
    if hit.empty:
        raise ValueError(f"no thesis table for {dataset}/{loss}/{metric}; datasets mvtec, mpdd; losses "
                         f"{', '.join(LOSSES)}; metrics pixel_auroc, aupro")
    return pd.read_csv(_TABLE_DIR / f"{hit.iloc[0].table}.csv")


def thesis_class_counts() -> pd.DataFrame:
    """From Tables C.1–C.12: per dataset, loss and metric, in how many classes post-hoc calibration
    (best of the four Platt/β columns) falls below the fully trained model, unperturbed and perturbed."""
    index = pd.read_csv(_TABLE_DIR / "table_c_index.csv")
    names = {v: k for k, v in _THESIS_LOSS.items()}
    post = [m for m in PAPER_METHODS if m != "fully_trained"]
    rows = []
    for r in index.itertuples():
        c = pd.read_csv(_TABLE_DIR / f"{r.table}.csv")
        c = c[c["class"] != "Average"]
        u, p = c[c.perturbed == 0].set_index("class"), c[c.perturbed == 1].set_index("class")
        rows.append({"dataset": r.dataset, "loss": LOSS_LABELS[names[r.loss]], "metric": r.metric, "classes": len(u),
                     "post-hoc below fully trained": int((u[post].max(1) < u.fully_trained).sum()),
                     "perturbed post-hoc below unperturbed fully trained":
                         int((p[post].max(1) < u.fully_trained).sum()),
                     "perturbation helps fully trained": int((p.fully_trained > u.fully_trained).sum())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# verdicts on §4.3.2, decided from the numbers
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
    adaptive = [m for m in ("local_oe", "local_spectral", "head_oe", "head_spectral") if m in set(df.method)]
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
    return _finite(out)


# ---------------------------------------------------------------------------------------------
# what the chapter shows: HTML tables, comparisons with the thesis, records
#: metric labels where lower is better (bold marks the lowest)
LOWER_IS_BETTER = ("MCE", "ECE", "ECE pasted", "MCE pasted")
#: labels that get no bold (diagnostics, not scores)
_NO_BEST = ("rank ρ", "rank corr", "AUROC f32", "AUROC float32 η̂", "κ")
#: how the book names the thesis' datasets
DATA_LABELS = {"mvtec": "MVTec AD", "mpdd": "MPDD", "textures": "defect textures"}
#: short column labels of the per-loss tables
_SHORT = {"AUROC perturbed": "AUROC pert.", "AUPRO perturbed": "AUPRO pert.", "rank corr": "rank ρ",
          "AUROC float32 η̂": "AUROC f32"}


def styled(df: pd.DataFrame, *, best: str | None = "row", digits: int = 1, caption: str | None = None):
    """``df`` as an HTML table (:func:`calad_lib.report.table`) with the best value of each row (or column)
    in bold, as the thesis marks it: highest for AUROC/AUPRO, lowest for ECE/MCE (:data:`LOWER_IS_BETTER`);
    the label of a row is the last level of its index."""
    from .report import table

    sty = table(df, digits=digits, caption=caption)
    if best not in ("row", "column"):
        return sty
    num = df.apply(pd.to_numeric, errors="coerce")
    mask = pd.DataFrame("", index=df.index, columns=df.columns)
    lines = num.iterrows() if best == "row" else num.items()
    for key, vals in lines:
        label = key[-1] if isinstance(key, tuple) else key
        if label in _NO_BEST or vals.notna().sum() < 2:
            continue
        target = vals.min() if label in LOWER_IS_BETTER else vals.max()
        for other in vals.index[vals.eq(target)]:
            cell = (key, other) if best == "row" else (other, key)
            mask.loc[cell] = "font-weight: 700"
    return sty.apply(lambda _: mask, axis=None)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    from .localization import METHOD_LABELS

    return frame.rename(columns=METHOD_LABELS)


def thesis_by_dataset() -> dict[str, pd.DataFrame]:
    """The thesis' Table 4.3 split by dataset: ``{"MVTec AD": frame, "MPDD": frame}``, rows (loss, metric),
    one column per model (labelled), values in %."""
    lay = thesis_layout()
    return {DATA_LABELS[ds]: _labelled(lay.xs(ds, level="data")) for ds in ("mvtec", "mpdd")}


def class_counts_table() -> pd.DataFrame:
    """:func:`thesis_class_counts` compact: rows (dataset, loss, metric), short column names (see the chapter)."""
    c = thesis_class_counts().replace({"dataset": DATA_LABELS, "metric": {"pixel_auroc": "AUROC", "aupro": "AUPRO"}})
    c = c.sort_values("dataset", key=lambda d: d.map({"MVTec AD": 0, "MPDD": 1}), kind="stable")
    c = c.set_index(["dataset", "loss", "metric"])
    return c.rename(columns={"post-hoc below fully trained": "post-hoc < FT",
                             "perturbed post-hoc below unperturbed fully trained": "perturbed post-hoc < FT",
                             "perturbation helps fully trained": "perturbation helps FT"})


def per_loss(ours: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """:func:`table_4_3` output split into one narrow table per (data family and) loss: one row per model,
    one column per metric (short labels). Keys: the loss label, prefixed by the family when there are several."""
    from .localization import METHOD_LABELS

    fams = list(dict.fromkeys(ours.index.get_level_values("data")))
    out = {}
    for fam in fams:
        for loss in dict.fromkeys(ours.xs(fam, level="data").index.get_level_values("loss")):
            t = ours.xs((fam, loss), level=("data", "loss")).T.rename(columns=_SHORT)
            t.index = [METHOD_LABELS.get(m, m) for m in t.index]
            out[loss if len(fams) == 1 else f"{DATA_LABELS.get(fam, fam)}, {loss}"] = t
    return out


def side_by_side(ours: pd.DataFrame, thesis: pd.DataFrame | None = None,
                 methods: Sequence[str] = PAPER_METHODS) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, str]]:
    """Per loss, our Table 4.3 and the thesis' in the same shape for :func:`calad_lib.report.compare`:
    ``{loss: (ours, thesis, caption)}``, rows (thesis dataset, metric), columns the thesis' models.

    Where our runs include the thesis' dataset (the ``thesis`` preset) that dataset is compared with
    itself; otherwise our data (the defect textures) stand beside each of the thesis' datasets.
    """
    thesis = thesis_layout() if thesis is None else thesis
    methods = [m for m in methods if m in ours.columns and m in thesis.columns]
    fams = list(dict.fromkeys(ours.index.get_level_values("data")))
    out = {}
    for loss in dict.fromkeys(ours.index.get_level_values("loss")):
        a, b, used = [], [], []
        for ds in ("mvtec", "mpdd"):
            fam = ds if ds in fams else fams[0]
            if (fam, loss) not in ours.droplevel("metric").index or (ds, loss) not in thesis.droplevel("metric").index:
                continue
            th = thesis.xs((ds, loss), level=("data", "loss"))[methods]
            mine = ours.xs((fam, loss), level=("data", "loss")).reindex(th.index)[methods]
            key = pd.MultiIndex.from_product([[DATA_LABELS[ds]], th.index], names=["thesis data", "metric"])
            a.append(mine.set_axis(key))
            b.append(th.set_axis(key))
            used.append(DATA_LABELS.get(fam, fam))
        if a:
            data = " and ".join(dict.fromkeys(used))
            out[loss] = (_labelled(pd.concat(a)), _labelled(pd.concat(b)),
                         f"{loss}: ours ({data}) / thesis, % (Δ = ours − thesis)")
    return out


def describe_grid(configs, df: pd.DataFrame, ours: pd.DataFrame, width: int = 90) -> str:
    """The shape of the experiment in a few lines of at most ``width`` characters: runs, rows, models."""
    import textwrap

    from .localization import METHOD_LABELS

    classes = sorted({c.dataset for c in configs})
    losses = list(dict.fromkeys(c.loss for c in configs))
    seeds = sorted({c.seed for c in configs})
    models = [METHOD_LABELS.get(m, m) for m in ours.columns]
    lines = [f"{len(configs)} runs = {len(classes)} class(es) × {len(losses)} loss(es) × {len(seeds)} seed(s); "
             f"{len(df)} result rows",
             f"losses: {', '.join(LOSS_LABELS.get(l, l) for l in losses)}",
             f"metrics per loss: {len(dict.fromkeys(ours.index.get_level_values('metric')))}",
             *textwrap.wrap(f"models ({len(models)}): {', '.join(models)}", width, subsequent_indent="  ")]
    return "\n".join(lines)


_RECORDED = ("pixel_auroc", "aupro", "pixel_auroc_perturbed", "aupro_perturbed", "pixel_ece", "pixel_mce")


def _finite(tree: dict) -> dict:
    """``tree`` without its NaN leaves (a NaN is not recorded)."""
    import math

    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            v = _finite(v)
            if v:
                out[k] = v
        elif math.isfinite(float(v)):
            out[k] = float(v)
    return out


def headline(df: pd.DataFrame, metrics: Sequence[str] = _RECORDED) -> dict:
    """``{loss: {method: {metric: mean}}}`` over classes and seeds (fractions), for ``calad.record``."""
    means = df.groupby(["loss", "method"], sort=False)[[m for m in metrics if m in df.columns]].mean()
    out: dict = {}
    for (loss, method), r in means.iterrows():
        out.setdefault(loss, {})[method] = {k: float(v) for k, v in r.items()}
    return _finite(out)


def fitted_params(df: pd.DataFrame) -> dict:
    """The fitted per-pixel Platt/β parameters, ``{loss: {method: {a, (b,) c}}}``, means over runs."""
    import json

    rows = df[df.method.str.match(r"^(platt|beta|beta_naive)_(oe|spectral)$") & df.cal_params.astype(bool)]
    out: dict = {}
    for (loss, method), g in rows.groupby(["loss", "method"], sort=False):
        params = pd.DataFrame([json.loads(p) for p in g.cal_params]).mean()
        out.setdefault(loss, {})[method] = {k: float(v) for k, v in params.items()}
    return _finite(out)


_ADAPTIVE = ("location_platt_oe", "location_platt_spectral", "local_oe", "local_spectral", "head_oe",
             "head_spectral")


def adaptive_gains(df: pd.DataFrame, ref: str = "base", *, raw: bool = False):
    """Each adaptive calibrator against ``ref`` (the ranking per-pixel Platt/β keep), paired run by run:
    rows (loss, model), mean gain of pixel AUROC and AUPRO in points and in how many runs it is positive.

    ``raw=True`` returns ``{loss: {method: {"pixel_auroc": gain, "aupro": gain}}}`` in fractions instead
    (for ``calad.record``).
    """
    from .localization import METHOD_LABELS

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
        return _finite(gains)
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
    AUROC gain over ``ref``, and how the 1×1 head's two sources compare where both were run."""
    from .localization import METHOD_LABELS

    gains = adaptive_gains(df, ref, raw=True)
    if not gains:
        return f"No adaptive calibrator was run beside `{ref}`."
    parts = []
    for loss, g in gains.items():
        best = max(g, key=lambda m: g[m]["pixel_auroc"])
        parts.append(f"{LOSS_LABELS.get(loss, loss)}: {METHOD_LABELS.get(best, best)} "
                     f"({100 * g[best]['pixel_auroc']:+.1f} AUROC, {100 * g[best]['aupro']:+.1f} AUPRO)")
    text = f"Largest mean gain in pixel AUROC over `{ref}`, per loss — " + "; ".join(parts) + "."
    both = [loss for loss, g in gains.items() if {"head_oe", "head_spectral"} <= set(g)]
    if both:
        oe = [loss for loss in both if gains[loss]["head_oe"]["pixel_auroc"] > gains[loss]["head_spectral"]["pixel_auroc"]]
        text += (f" The 1×1 head gains more pixel AUROC from OE patches than from spectral ones for "
                 f"{len(oe)} of {len(both)} losses.")
    elif any(m.startswith("head_") for g in gains.values() for m in g):
        text += " This preset fits the 1×1 head on one source only."
    return text
