"""The claims of §4.3.1 and the conformal summary: the numbers behind the verdicts, and sentences decided by them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calad_lib.detection import claims as Cl
from calad_lib import detection as G
from calad_lib.detection.experiment import METHODS


def _rows(fpr: dict[str, float], experiments: int = 4, normal: int = 500) -> pd.DataFrame:
    rows = [dict(dataset="fashion_mnist", method=m, run_key=f"k{e}", test_normal_images=normal, conformal_fpr=r,
                 bh_fdr=0.05, bh_power=0.5) for e in range(experiments) for m, r in fpr.items()]
    return pd.DataFrame(rows)


def test_claim_numbers_are_the_statistics_behind_the_verdicts():
    c = Cl.claims(G.thesis_frame("fashion_mnist"), "fashion_mnist")
    assert {"statistic", "p"} <= set(c.columns)
    assert c.loc["C1", "statistic"] > 0 and c.loc["C1", "p"] < 0.05 and c.loc["C1", "verdict"] == "supported"
    nums = Cl.numbers(c)
    assert set(nums) == {cid.lower() for cid in c.index}
    assert "p" not in nums["c5"] and nums["c5"]["statistic"] == pytest.approx(c.loc["C5", "statistic"])
    assert all(math.isfinite(v) for d in nums.values() for v in d.values())


def test_verdict_table_tints_both_verdict_columns():
    c = Cl.claims(G.thesis_frame("fashion_mnist"), "fashion_mnist")
    sty = Cl.verdict_table(c.iloc[:3], c["verdict"].iloc[:2], caption="claims")
    html = sty.to_html()
    css = {k: dict(v) for k, v in sty._compute().ctx.items()}
    assert css[(0, 2)]["background-color"] == css[(0, 3)]["background-color"] == "#dff0d8"   # supported: green
    assert css[(2, 3)]["background-color"] == "#eeeeee" and "n/a: not in its tables" in html


def test_conformal_verdicts_and_sentence_follow_the_rates():
    fair = _rows({m: 0.10 for m in METHODS})
    s = Cl.conformal(fair, "fashion_mnist", 0.1)
    assert list(s.index) == list(METHODS) and (s["verdict"] == "within α").all()
    assert s.loc["base", "normal images"] == 2000 and s.loc["base", "experiments"] == 4
    text = Cl.conformal_sentence(s, 0.1)
    assert text.startswith("In this run no model's false-alarm rate exceeds α = 0.1")
    over = Cl.conformal(_rows({**{m: 0.10 for m in METHODS}, "calhead_oe": 0.2}), "fashion_mnist", 0.1)
    assert over.loc["calhead_oe", "verdict"] == "exceeds α" and over.loc["calhead_oe", "p (rate > α)"] < 1e-6
    text = Cl.conformal_sentence(over, 0.1)
    assert "for CalHead OE" in text and "as expected" in text
    bad = Cl.conformal(_rows({**{m: 0.10 for m in METHODS}, "platt_oe": 0.2}), "fashion_mnist", 0.1)
    assert "not exchangeable" in Cl.conformal_sentence(bad, 0.1)
    view = Cl.conformal_view(over)
    assert "Platt OE" in view.index and "experiments" not in view and view.loc["CalHead OE", "p (rate > α)"] == "< 0.001"


def test_kappa_correlations_per_dataset_and_error():
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame(dict(dataset="fashion_mnist", method="platt_oe", kappa=rng.random(n),
                           **{k: rng.random(n) for k in ("ece", "mce", "ece_oe", "mce_oe", "ece_spectral",
                                                         "mce_spectral")}))
    df["ece"] = df.kappa * 2                            # a perfect monotone relationship
    k = Cl.kappa_correlations(df)
    assert k.shape == (6, 3) and k.loc[("fashion_mnist", "ECE"), "Spearman ρ"] == pytest.approx(1.0)
    assert k.loc[("fashion_mnist", "ECE"), "models"] == n and k.loc[("fashion_mnist", "ECE"), "p-value"] == "< 0.001"
