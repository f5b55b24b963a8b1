"""Localization experiment pieces (thesis §4.2, §4.3.2, Table 4.3, App. C): configs, the thesis' tables,
a tiny end-to-end run checked against calad.perturbation.evaluate and calad.calibration.calibrate, tables and verdicts."""
from __future__ import annotations

import dataclasses

import numpy as np
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

import calad_lib as calad
from calad_lib import localization as L
from calad_lib import localization as LT
from calad_lib.localization import BrightnessModel
from calad_lib.scoring import SharedOutputs
from calad_lib.calibration import calibrate


# --- configuration --------------------------------------------------------------------------------
def test_config_validates_in_one_line():
    cfg = L.LocalizationConfig("textures:weave", "unet", methods=["base", "platt_oe"])
    assert cfg.methods == ("base", "platt_oe") and cfg.class_name == "weave"
    assert cfg.as_dict()["version"] == L.RESULTS_VERSION
    for kw, fragment in [(dict(loss="svdd"), "'loss' = 'svdd' is not a known choice"),
                         (dict(methods=("isotonic",)), "'methods'\\[0\\] = 'isotonic' is not a known choice"),
                         (dict(dataset="cifar10"), "localization needs"), (dict(epochs=0), "epochs"),
                         (dict(n_test=2), "n_test")]:
        args = {"dataset": "textures:weave", "loss": "fcdd", **kw}
        with pytest.raises(ValueError, match=fragment) as e:
            L.LocalizationConfig(**args)
        assert "\n" not in str(e.value)


def test_missing_datasets_fail_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("CALAD_DATA", str(tmp_path))
    with pytest.raises(calad.data.DataNotFound, match="mvtec:bottle not found") as e:
        L.check_configs([L.LocalizationConfig("textures:weave", "fcdd"), L.LocalizationConfig("mvtec:bottle", "fcdd")])
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown texture class"):
        L.check_configs([L.LocalizationConfig("textures:plaid", "fcdd")])


# --- the thesis' tables ------------------------------------------------------------------------------
def test_table_4_3_is_the_average_of_the_appendix_c_tables():
    t = LT.thesis_table_4_3()
    assert set(t.dataset) == {"mvtec", "mpdd"} and len(t) == 36
    for dataset, n_classes in (("mvtec", 15), ("mpdd", 6)):
        for loss in L.LOSSES:
            for metric in ("pixel_auroc", "aupro"):
                c = LT.thesis_per_class(dataset, loss, metric)
                assert len(c) == 2 * (n_classes + 1)
                for pert in (0, 1):
                    rows = c[(c.perturbed == pert) & (c["class"] != "Average")][list(L.PAPER_METHODS)]
                    avg = c[(c.perturbed == pert) & (c["class"] == "Average")][list(L.PAPER_METHODS)].iloc[0]
                    np.testing.assert_allclose(rows.mean().to_numpy(), avg.to_numpy(), atol=0.011)   # rounding
                    th = t[(t.dataset == dataset) & (t.loss == L.tables._THESIS_LOSS[loss]) & (t.metric == metric)
                           & (t.perturbed == pert)][list(L.PAPER_METHODS)].iloc[0]
                    np.testing.assert_allclose(avg.to_numpy(), th.to_numpy(), atol=1e-9)
    lay = LT.thesis_layout()
    assert lay.loc[("mvtec", "FCDD", "AUROC"), "fully_trained"] == 77.71
    assert lay.loc[("mpdd", "LGS", "ECE"), "beta_oe"] == 0.03
    with pytest.raises(ValueError, match="no thesis table"):
        LT.thesis_per_class("textures", "fcdd", "aupro")


# --- tables and verdicts from known numbers ---------------------------------------------------------
def _frame(values: dict[str, dict[str, float]], loss="fcdd", seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for method, v in values.items():
            rows.append({"dataset": "textures:weave", "family": "textures", "class": "weave", "loss": loss,
                         "seed": seed, "method": method, **{k: x + 0.001 * seed for k, x in v.items()}})
    return pd.DataFrame(rows)


def _vals(auroc, aupro, gain=0.001, ece=0.1, mce=0.3):
    return {"pixel_auroc": auroc, "pixel_auroc_perturbed": auroc + gain, "aupro": aupro,
            "aupro_perturbed": aupro + gain, "pixel_ece": ece, "pixel_mce": mce, "pixel_ece_patch": ece}


def test_table_4_3_layout_and_means():
    df = _frame({"fully_trained": _vals(0.9, 0.6), "platt_oe": _vals(0.8, 0.5)})
    t = LT.table_4_3(df, extra=["pixel_ece_patch"])
    assert t.index.names == ["data", "loss", "metric"]
    assert list(t.columns) == ["fully_trained", "platt_oe"]
    assert [m for _, _, m in t.index] == ["AUROC", "AUROC perturbed", "AUPRO", "AUPRO perturbed", "MCE", "ECE",
                                          "ECE pasted"]
    assert t.loc[("textures", "FCDD", "AUROC"), "fully_trained"] == pytest.approx(90.05)


def test_verdicts_follow_the_numbers():
    harm = _frame({"fully_trained": _vals(0.9, 0.6, ece=0.01, mce=0.1), "platt_spectral": _vals(0.8, 0.5),
                   "beta_spectral": _vals(0.8, 0.5), "location_platt_spectral": _vals(0.7, 0.4),
                   "local_spectral": _vals(0.95, 0.7)}, loss="unet")
    v = LT.verdicts(harm).set_index("claim")["verdict"]
    assert v["per-pixel Platt/β do not improve localization over the fully trained model"] == "holds"
    assert v["perturbation gains are marginal"] == "holds"
    assert v["for the logistic loss the fully trained model is better calibrated than post-hoc"] == "holds"
    assert v["one Platt per location lowers pixel AUROC (a reading of the thesis' drop)"] == "holds"
    assert v["the best adaptive calibrator (local_spectral) localizes better than per-pixel Platt (spectral)"] == "holds"
    assert v["the best adaptive calibrator (local_spectral) localizes better than the fully trained network"] == "holds"
    helps = _frame({"fully_trained": _vals(0.8, 0.5), "platt_spectral": _vals(0.9, 0.6, gain=0.05)})
    v = LT.verdicts(helps).set_index("claim")["verdict"]
    assert v["per-pixel Platt/β do not improve localization over the fully trained model"] == "does not hold"
    assert v["perturbation gains are marginal"] == "does not hold"
    full = LT.verdicts(harm)     # every verdict carries its margin: positive exactly where the claim holds
    assert ((full.margin > 0) == (full.verdict == "holds")).all()
    assert LT.verdict_margins(full)["lgs"]["location_platt_lowers"] == pytest.approx(
        (0.8 + 0.0005) - 0.005 - (0.7 + 0.0005))
    assert "holds for **1 of 1** loss" in LT.verdict_summary(full)


def test_reader_tables_and_records():
    df = _frame({"fully_trained": _vals(0.9, 0.6), "base": _vals(0.8, 0.5), "platt_oe": _vals(0.8, 0.5),
                 "local_spectral": _vals(0.85, 0.55)})
    df["cal_params"] = ["", "", '{"a": 1.5, "c": -2.0}', ""] * 2
    ours = LT.table_4_3(df, extra=["pixel_ece_patch"])
    per = LT.per_loss(ours)
    assert list(per) == ["FCDD"] and list(per["FCDD"].index) == ["Fully Trained", "Base (3/4 split)", "Platt OE",
                                                                 "Local Spectral"]
    side = LT.side_by_side(ours)
    mine, theirs, caption = side["FCDD"]
    assert mine.shape == theirs.shape == (12, 2) and "defect textures" in caption
    assert theirs.loc[("MVTec AD", "AUROC"), "Fully Trained"] == 77.71
    sty = LT.styled(per["FCDD"], best="column")
    sty._compute()
    bold = {(r, c) for (r, c), css in sty.ctx.items() if ("font-weight", "700") in css}
    cols = list(per["FCDD"].columns)
    assert (0, cols.index("AUROC")) in bold                            # highest AUROC: the fully trained network
    assert (0, cols.index("ECE")) in bold and (1, cols.index("ECE")) in bold   # lowest ECE: all tie at 10.0
    rec = LT.headline(df)
    assert rec["fcdd"]["platt_oe"]["pixel_auroc"] == pytest.approx(0.8005)
    assert LT.fitted_params(df) == {"fcdd": {"platt_oe": {"a": 1.5, "c": -2.0}}}
    gains = LT.adaptive_gains(df, raw=True)
    assert gains["fcdd"]["local_spectral"]["pixel_auroc"] == pytest.approx(0.05)
    assert "Local Spectral (+5.0 AUROC" in LT.adaptive_text(df)
    text = LT.describe_grid([L.LocalizationConfig("textures:weave", "fcdd", seed=s) for s in (0, 1)], df, ours)
    assert text.startswith("2 runs = 1 class(es) × 1 loss(es) × 2 seed(s); 8 result rows")
    assert max(map(len, text.splitlines())) <= 90


# --- a tiny end-to-end run ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("loc")
    mp = pytest.MonkeyPatch()
    for var in ("CALAD_CACHE", "CALAD_RESULTS"):
        mp.setenv(var, str(root / var.lower()))
    mp.setenv("CALAD_DEVICE", "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # 32×32 toy networks: one thread is faster than two
    calad.synthesis.make_defect_textures(root / "calad_cache" / "textures", ["weave"], n_train=12, n_test=10,
                                         size=32, progress=False)
    calad.data.cache_clear()
    cfg = L.LocalizationConfig("textures:weave", "fcdd", size=32, epochs=1, batch_size=8, n_oe=16, n_calib=8,
                               n_eval=6, n_test=9, methods=("fully_trained", "base", "platt_spectral",
                                                            "beta_naive_oe", "location_platt_spectral",
                                                            "local_spectral"))
    p = L.prepare(cfg, progress=False)
    yield cfg, p, L.evaluate_prepared(p, progress=False), root
    mp.undo()
    torch.set_num_threads(threads)
    calad.data.cache_clear()


def test_tiny_run_rows(tiny_run):
    cfg, p, rows, _ = tiny_run
    df = pd.DataFrame(rows).set_index("method")
    assert list(df.index) == list(cfg.methods)
    assert len(p.data.test_y) == 9 and int((p.data.test_y == 0).sum()) == 3
    cols = ["pixel_auroc", "pixel_auroc_perturbed", "aupro", "aupro_perturbed", "pixel_ece", "pixel_mce",
            "pixel_ece_patch", "pixel_mce_patch", "pixel_auroc_eta32"]
    assert ((df[cols] >= 0) & (df[cols] <= 1)).all().all()
    # per-pixel Platt is one monotone map: same (or reversed) ranking as the base network, within every image
    assert abs(df.loc["platt_spectral", "rank_corr"]) == pytest.approx(1.0)
    a, b = df.loc["platt_spectral", "pixel_auroc"], df.loc["base", "pixel_auroc"]
    # up to float32 rounding of a z + c, which can tie neighbouring logits (one tied pair of ~10^4 pixels
    # moves AUROC by ~1e-7; the kernels chosen by the CPU decide which pairs)
    assert min(abs(a - b), abs(a - (1 - b))) < 1e-5
    assert df.loc["base", "rank_corr"] == pytest.approx(1.0)


def test_tiny_run_matches_the_library_protocol(tiny_run):
    cfg, p, rows, _ = tiny_run
    d = p.data
    good = d.test_x[d.test_y == 0]
    by = {r["method"]: r for r in rows}
    for method in ("platt_spectral", "local_spectral", "fully_trained"):
        ref = calad.perturbation.evaluate(p.models[method], d.test_x, d.test_y, calib_normal=good,
                                     calib_anomalies=p.eval_anomalies, masks=d.test_masks[:, 0], eps=cfg.eps)
        for k, v in ref.items():
            assert by[method][k] == pytest.approx(v, abs=1e-6), (method, k)


def test_shared_logit_fits_equal_calibrate(tiny_run):
    cfg, p, _, _ = tiny_run
    base = p.models["base"]
    spec = calad.synthesis.spectral(cfg.n_calib, 3, cfg.size, seed=10_000 + cfg.seed)
    aug = calad.data.Augment()
    both = calibrate(base, ["platt", "beta"], normal=p.data.calib, anomalous=spec, n=cfg.n_calib, augment=aug,
                     seed=cfg.seed, progress=False)
    ours = [both["platt"], both["beta"]]
    for model, kind in zip(ours, ["platt", "beta"]):
        ref = calibrate(base, kind, normal=p.data.calib, anomalous=spec, n=cfg.n_calib, augment=aug, seed=cfg.seed,
                        progress=False)
        assert model.calibrator.coefficients() == pytest.approx(ref.calibrator.coefficients(), rel=1e-6, abs=1e-9)
    assert p.models["platt_spectral"].calibrator.coefficients() == pytest.approx(ours[0].calibrator.coefficients(), rel=1e-6)


def test_run_is_resumable_and_saves_heatmaps(tiny_run, monkeypatch):
    cfg, p, rows, root = tiny_run
    cfg = dataclasses.replace(cfg, heatmaps=2)
    store = L.store_for("test")
    assert str(store.root).startswith(str(root))
    monkeypatch.setattr(L.experiment, "prepare", lambda *a, **k: p._replace(config=cfg))
    df = L.run_grid([cfg], store, progress=False)
    assert list(df.method) == list(cfg.methods) and set(df["class"]) == {"weave"} and set(df.loss) == {"fcdd"}
    hm = L.load_heatmaps(cfg, store)
    assert hm["image"].shape == (2, 32, 32, 3) and hm["mask"].shape == (2, 32, 32)
    assert set(hm["maps"]) == {m for m in L.HEATMAP_METHODS if m in cfg.methods}
    assert all(((v >= 0) & (v <= 1)).all() for v in hm["maps"].values())

    def boom(*a, **k):
        raise AssertionError("a finished run must be read, not recomputed")

    monkeypatch.setattr(L.experiment, "prepare", boom)
    again = L.run_grid([cfg], store, progress=False)
    assert again.pixel_auroc.tolist() == pytest.approx(df.pixel_auroc.tolist())
    title, found = L.heatmaps_for([cfg], store, cfg.loss)
    assert found is not None and title == "FCDD, weave"
    fig = L.heatmap_figure(title, found, index=1)
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 + len(hm["maps"])                         # image, ground truth, one map per model
    assert calad.plots.panels_per_row(fig) <= 3 and any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    plt.close(fig)
    assert L.heatmaps_for([cfg], store, "unet")[1] is None
    # a damaged heatmap file makes the run unfinished: it is set aside and the run done again
    store.companion(cfg.as_dict(), "heatmaps.npz").write_bytes(b"damaged")
    with pytest.warns(calad.runs.ResultWarning, match="companion file"):
        assert not store.done(cfg.as_dict())


def test_scores_reuse_the_base_logits_exactly():
    base = BrightnessModel()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 8, 8, generator=g)
    cm = calibrate(base, "beta", normal=x * 0.5, anomalous=x * 0.5 + 0.5, n=4, augment=False, progress=False)
    shared = SharedOutputs({"x": x}, batch_size=3)
    z, eta, s = shared.outputs(cm, "x")
    assert torch.allclose(s, cm.outputs(x).score.detach(), atol=1e-6) and torch.allclose(eta, torch.sigmoid(z))
    assert len(shared._memo) == 1                       # one pass of the base, none of the calibrated model
