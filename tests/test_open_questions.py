"""The open-questions chapter's tables and verdicts, on frames whose answers are known by construction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calad_lib import open_questions as Q


def _detection(shift_stable: float, noise: float = 0.0, n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for loss in ("svdd", "logistic"):
        for c in range(n):
            base = rng.uniform(0.6, 0.9)
            for src in ("oe", "spectral"):
                for m, v in ((f"platt_{src}", base), (f"beta_{src}", base + shift_stable + noise * rng.normal()),
                             (f"beta_naive_{src}", base - 0.1)):
                    rows.append({"loss": loss, "dataset": "fashion_mnist", "normal_class": c, "seed": 0, "method": m,
                                 "auroc": v, "auroc_perturbed": v + 0.01, "ece": 0.02})
    return pd.DataFrame(rows)


def test_stable_beta_table_is_the_paired_mean_difference():
    df = _detection(0.02, noise=0.005)
    t = Q.stable_beta(df)
    assert set(t.index.get_level_values("loss")) == {"svdd", "logistic"}
    r = t.loc[("svdd", "auroc")]
    g = df[df.loss == "svdd"]
    platt = g[g.method.str.startswith("platt")].auroc.mean()
    stable = g[g.method.isin(["beta_oe", "beta_spectral"])].auroc.mean()
    assert r["Platt"] == pytest.approx(100 * platt) and r["β stable"] == pytest.approx(100 * stable)
    assert r["stable − Platt"] == pytest.approx(100 * (stable - platt))
    naive = g[g.method.str.startswith("beta_naive")].auroc.mean()
    assert r["naive − stable"] == pytest.approx(100 * (naive - stable))
    assert r["runs"] == 24
    w = g.pivot_table(index=["normal_class"], columns="method", values="auroc")
    d = np.r_[(w.beta_oe - w.platt_oe).to_numpy(), (w.beta_spectral - w.platt_spectral).to_numpy()]
    assert r["p"] == pytest.approx(stats.wilcoxon(d).pvalue)


@pytest.mark.parametrize("shift, verdict", [(0.0, "matches Platt"), (0.03, "beats Platt"), (-0.03, "worse than Platt")])
def test_stable_beta_verdicts_follow_the_numbers(shift, verdict):
    v = Q.stable_beta_verdicts(Q.stable_beta(_detection(shift, noise=0.002)))
    assert set(v[v.metric == "auroc"].verdict) == {verdict}
    # ECE is identical for both: a match whatever the AUROC does
    assert set(v[v.metric == "ece"].verdict) == {"matches Platt"}


def _models(n: int = 40, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    loss = np.repeat(["svdd", "ssim"], n)
    kappa = rng.uniform(0, 1, 2 * n) + (loss == "ssim") * 2.0
    return pd.DataFrame({"loss": loss, "kappa": kappa,
                         "pred_proxy_kappa": kappa ** 3,                      # monotone in κ: ρ = 1
                         "ece": rng.uniform(size=2 * n),                      # unrelated
                         "pred_grad_log_ratio": (loss == "ssim") + 0.01 * rng.uniform(size=2 * n)})  # loss only


def test_predictor_correlations_pooled_and_within_loss():
    c = Q.predictor_correlations(_models())
    assert c.loc["pred_proxy_kappa", "pooled ρ"] == pytest.approx(1.0)
    assert c.loc["pred_proxy_kappa", "ρ svdd"] == pytest.approx(1.0)
    m = _models()
    assert c.loc["ece", "pooled ρ"] == pytest.approx(stats.spearmanr(m.kappa, m.ece).statistic)
    assert c.loc["pred_grad_log_ratio", "pooled ρ"] > 0.7            # separates the losses ...
    assert abs(c.loc["pred_grad_log_ratio", "median within-group ρ"]) < 0.4   # ... but not the models of one loss
    assert "pred_loss_drop_gap" not in c.index                        # absent columns are skipped


def test_predictor_verdicts_need_the_within_loss_ranking_too():
    v = Q.predictor_verdicts(Q.predictor_correlations(_models())).set_index("predictor").verdict
    assert v["pred_proxy_kappa"] == "predicts κ"
    assert v["ece"] == "no usable relationship"
    assert v["pred_grad_log_ratio"] != "predicts κ"


def _localization(gain: float) -> pd.DataFrame:
    rows = []
    for loss in ("fcdd", "unet"):
        for cls in ("weave", "dots", "marble"):
            for m, a in (("fully_trained", 0.80), ("base", 0.75), ("platt_oe", 0.75), ("local_spectral", 0.75 + gain),
                         ("local_network_spectral", 0.70)):
                rows.append({"loss": loss, "dataset": f"textures:{cls}", "class": cls, "seed": 0, "method": m,
                             "pixel_auroc": a, "aupro": a - 0.3, "pixel_auroc_perturbed": a, "aupro_perturbed": a - 0.3,
                             "pixel_ece": 0.01, "pixel_ece_patch": 0.02})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("gain, vs_posthoc, vs_full", [(0.10, "yes", "yes"), (0.03, "yes", "no"), (0.0, "no", "no")])
def test_adaptive_verdicts(gain, vs_posthoc, vs_full):
    df = _localization(gain)
    s = Q.adaptive_summary(df)
    assert s.loc[("fcdd", "best adaptive"), "method"] == "local_spectral"
    assert s.loc[("fcdd", "best adaptive"), "pixel_auroc"] == pytest.approx(100 * (0.75 + gain))
    v = Q.adaptive_verdicts(df)
    assert len(v) == 4
    assert set(v[v.claim.str.contains("per-pixel")].verdict) == {vs_posthoc}
    assert set(v[v.claim.str.contains("fully trained")].verdict) == {vs_full}


def test_adaptive_verdict_from_one_run_says_it_is_too_few():
    df = _localization(0.10)
    one = df[df["class"] == "weave"]
    assert set(Q.adaptive_verdicts(one).verdict) == {"yes at this scale (too few runs to conclude)"}
    assert set(Q.adaptive_verdicts(one, min_runs=1).verdict) == {"yes"}


def test_a_predictor_that_reverses_within_one_loss_is_not_called_a_predictor():
    m = _models()
    third = m[m.loss == "svdd"].assign(loss="hsc", kappa=lambda d: d.kappa + 5.0)
    third["pred_proxy_kappa"] = 100.0 - third.kappa   # within hsc: perfectly reversed
    both = pd.concat([m, third, m[m.loss == "ssim"].assign(loss="logistic")], ignore_index=True)
    c = Q.predictor_correlations(both, ["pred_proxy_kappa"])
    assert c.loc["pred_proxy_kappa", "ρ hsc"] == pytest.approx(-1.0)
    v = Q.predictor_verdicts(c).set_index("predictor").verdict
    assert v["pred_proxy_kappa"] in ("predicts κ pooled, not within every loss", "weak relationship",
                                     "no usable relationship")
    assert v["pred_proxy_kappa"] != "predicts κ"


def test_verdicts_carry_their_margins_and_statuses():
    df = _localization(0.03)
    v = Q.adaptive_verdicts(df)
    per_pixel = v[v.reference == "per_pixel"].iloc[0]
    assert per_pixel.auroc_gain == pytest.approx(0.03) and per_pixel.margin == pytest.approx(0.025)
    assert v[v.reference == "fully_trained"].margin.iloc[0] == pytest.approx(-0.02 - 0.005)
    rec = Q.records_q1(v)
    assert rec["fcdd"]["per_pixel"]["auroc_gain"] == pytest.approx(0.03)
    assert [Q.status(x) for x in ("yes", "yes at this scale (too few runs to conclude)", "no", "matches Platt",
                                  "worse than Platt", "differs, not significantly", "predicts κ",
                                  "weak relationship", "no usable relationship")] == \
        ["holds", "open", "fails", "holds", "fails", "open", "holds", "open", "fails"]


def test_records_leave_out_undefined_p_values_and_answers_follow_the_verdicts():
    t = Q.stable_beta(_detection(0.0))            # stable β ≡ Platt: every difference is zero, p undefined
    q2 = Q.stable_beta_verdicts(t).assign(task="detection")
    rec = Q.records_q2(q2)
    assert rec["detection"]["svdd"]["auroc"] == {"stable_minus_platt": 0.0}
    q1 = Q.adaptive_verdicts(_localization(0.10))
    q3 = Q.predictor_verdicts(Q.predictor_correlations(_models()))
    a = Q.answers(q1, q2, q3)
    assert list(a.verdict) == ["yes", "yes", "yes"] and "pred_proxy_kappa" in a.answer.iloc[2]
    assert Q.answers(Q.adaptive_verdicts(_localization(0.0)), q2, q3).verdict.iloc[0] == "no"
    assert "**6 of 6**" in Q.stable_beta_text(q2)
