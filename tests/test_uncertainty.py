"""Uncertainty wrappers: MC dropout, ensembles, the energy model, their training cache."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import calad_lib as calad
from calad_lib import uncertainty as U
from calad_lib.train import CacheWarning

pytestmark = pytest.mark.usefixtures("one_thread", "model_cache")


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    normal = (0.3 + 0.2 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)
    anomalies = torch.rand(n, 1, 28, 28, generator=g)
    return normal, anomalies


def _lenet():
    torch.manual_seed(0)
    return calad.nets.build_net("lenet28", (1, 28, 28))


def test_mean_prob_logit_is_log_odds_of_the_mean_probability():
    z = torch.tensor([[-3.0, 0.5, 40.0, -60.0], [1.0, 2.0, 45.0, -70.0], [0.0, -1.0, 50.0, -65.0]], dtype=torch.float64)
    got = U.mean_prob_logit(z)
    p = torch.sigmoid(z).mean(0)
    torch.testing.assert_close(got[:2], torch.log(p[:2] / (1 - p[:2])))
    # saturated members: exact in log space, where σ would round to 0 or 1
    torch.testing.assert_close(got[2], -torch.log(torch.exp(-z[:, 2]).mean()), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got[3], torch.log(torch.exp(z[:, 3]).mean()), rtol=1e-9, atol=1e-9)


def test_mc_dropout_shapes_ranges_and_determinism():
    m = U.MCDropoutModel(_lenet(), (1, 28, 28), p=0.3, passes=7, mask_seed=3).eval()
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        o = m.outputs(x)
        zt = m.pass_logits(x)
        assert zt.shape == (7, 6) and o.logit.shape == o.eta.shape == o.score.shape == (6,)
        assert ((o.eta > 0) & (o.eta < 1)).all()
        torch.testing.assert_close(o.eta, torch.sigmoid(zt).mean(0))
        torch.testing.assert_close(m.spread(x), torch.sigmoid(zt).std(0, unbiased=False))
        # the same input gives the same η̂ in any batch, on every call
        torch.testing.assert_close(m.outputs(x[2:4]).eta, o.eta[2:4])
        torch.testing.assert_close(m.outputs(x).eta, o.eta)
        # masks differ between passes, so the passes differ
        assert zt.std(0).min() > 0


def test_mc_dropout_pass_equals_a_thinned_network():
    m = U.MCDropoutModel(_lenet(), (1, 28, 28), p=0.5, passes=3, mask_seed=1).eval()
    x = torch.rand(4, 1, 28, 28)
    net = m.net
    with torch.no_grad():
        h = net.conv(m.prep(x)).flatten(1)
        t = 2
        h = F.leaky_relu(net.bn1(net.fc1(h * m.mask0[t])))
        z = m.linear(net.fc2(h * m.mask1[t]) * m.mask2[t]).squeeze(-1)
        torch.testing.assert_close(m.pass_logits(x)[t], z)
        # kept units are scaled by 1/(1 - p) (inverted dropout), dropped ones are 0
        assert set(m.mask0.unique().tolist()) <= {0.0, 2.0}


def test_mc_dropout_training_mode_is_stochastic():
    m = U.MCDropoutModel(_lenet(), (1, 28, 28), p=0.5, passes=3).train()
    x = torch.rand(8, 1, 28, 28)
    assert not torch.equal(m.outputs(x).logit, m.outputs(x).logit)
    assert m.loss(x, torch.zeros(8)).shape == (8,)


def test_ensemble_averages_probabilities():
    members = []
    for s in range(3):
        torch.manual_seed(s)
        members.append(calad.losses.build_model("logistic", (1, 28, 28), dataset="fashion_mnist").eval())
    ens = U.Ensemble(members).eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        etas = torch.stack([m.outputs(x).eta for m in members])
        o = ens.outputs(x)
        torch.testing.assert_close(o.eta, etas.mean(0))
        torch.testing.assert_close(ens.spread(x), etas.std(0, unbiased=False))
        torch.testing.assert_close(ens.loss(x, torch.ones(5)), -torch.log(etas.mean(0)), rtol=1e-5, atol=1e-6)
    assert ens.name == "ensemble[logistic×3]"
    assert ens.head_features(x).shape == (5, 3 * 32)
    with pytest.raises(ValueError, match="at least one"):
        U.Ensemble([])


def test_energy_model_loss_and_outputs():
    m = U.EnergyModel(_lenet(), (1, 28, 28), m_in=-6.0, m_out=-2.0).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        f = m.net(m.prep(x))
        e = -torch.logsumexp(f, 1)
        o = m.outputs(x)
        torch.testing.assert_close(o.score, e)
        torch.testing.assert_close(o.logit, e + 4.0)
        torch.testing.assert_close(o.eta, torch.sigmoid(e + 4.0))
        y = torch.tensor([0.0, 1.0, 0.0, 1.0])
        want = torch.where(y == 0, F.relu(e + 6.0) ** 2, F.relu(-2.0 - e) ** 2)
        torch.testing.assert_close(m.loss(x, y), want)
    with pytest.raises(ValueError, match="m_in < m_out"):
        U.EnergyModel(_lenet(), (1, 28, 28), m_in=0.0, m_out=0.0)


def test_fit_trains_caches_and_separates():
    normal, anomalies = _data(32)
    cfg = U.FitConfig("mc_dropout", anomalies="noise", epochs=6, milestones=(), batch_size=16, augment=False,
                      passes=5, lr=1e-3)
    m = U.fit(cfg, normal, anomalies, progress=False)
    assert not m.training
    with torch.no_grad():
        assert m.outputs(anomalies).eta.mean() > m.outputs(normal).eta.mean() + 0.2
    again = U.fit(cfg, normal, anomalies, progress=False)
    for a, b in zip(m.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert m.fit_info["cached"] is False and again.fit_info["cached"] is True
    assert len(again.fit_info["epoch_seconds"]) == cfg.epochs           # the record of the run that trained it
    path = calad.runs.model_path("mc_dropout", U.training._identity(cfg, normal, anomalies))
    path.write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match="unreadable"):
        assert U.fit(cfg, normal, anomalies, progress=False).fit_info["cached"] is False


def test_fit_method_builds_every_method():
    normal, anomalies = _data(16)
    kw = dict(anomaly_source="noise", epochs=1, milestones=(), ensemble_size=2, passes=4, progress=False)
    x = torch.rand(3, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        for method in U.METHODS:
            m = U.fit_method(method, normal, anomalies, **kw)
            with torch.no_grad():
                o = m.outputs(x)
            assert o.eta.shape == (3,) and ((o.eta >= 0) & (o.eta <= 1)).all(), method
            torch.testing.assert_close(o.eta, torch.sigmoid(o.logit), msg=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)       # one epoch may not separate: Platt then warns
        cal = calad.calibration.calibrate(m, "platt", normal=normal, anomalous=anomalies, n=32, augment=False,
                                          progress=False)
    assert cal.name == "platt[ensemble[logistic×2]]"


def test_bad_arguments_raise_one_line():
    normal, anomalies = _data(8)
    with pytest.raises(ValueError, match="unknown uncertainty method"):
        U.fit_method("svdd", normal, anomalies, anomaly_source="noise")
    with pytest.raises(ValueError, match="calad.train.train"):
        U.FitConfig("logistic")
    with pytest.raises(ValueError, match="dropout"):
        U.FitConfig("mc_dropout", dropout=1.0)
    with pytest.raises(ValueError, match="shape"):
        U.fit_method("energy", normal, anomalies[:, :, :20, :20], anomaly_source="noise")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        U.fit_method("energy", normal * 3, anomalies, anomaly_source="noise")
    with pytest.raises(ValueError, match="passes"):
        U.MCDropoutModel(_lenet(), (1, 28, 28), passes=0)


def test_evaluate_rows_match_direct_metrics():
    normal, anomalies = _data(40)
    model = U.fit_method("ensemble", normal, anomalies, anomaly_source="noise", epochs=2, milestones=(),
                         ensemble_size=2, progress=False)
    g = torch.Generator().manual_seed(5)
    ev_normal = (0.3 + 0.2 * torch.rand(30, 1, 28, 28, generator=g)).clamp(0, 1)
    sets = {"a": torch.rand(20, 1, 28, 28, generator=g), "b": torch.rand(40, 1, 28, 28, generator=g) * 0.6}
    test_x = torch.cat([ev_normal, sets["a"]])
    test_y = torch.cat([torch.zeros(30), torch.ones(20)]).long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cals = [calad.calibration.calibrate(model, m, normal=normal, anomalous=anomalies, n=40, augment=False,
                                            progress=False) for m in ("platt", "beta")]
    rows = U.evaluate(model, normal=ev_normal, anomalies=sets, test_x=test_x, test_y=test_y, calibrated=cals, n_bins=5)
    assert [r["calibration"] for r in rows] == ["none", "platt", "beta"]
    with torch.no_grad():
        e0, ea = model.outputs(ev_normal).eta.numpy(), model.outputs(sets["a"]).eta.numpy()
        eb = cals[0].outputs(sets["b"]).eta.numpy()
        e0p = cals[0].outputs(ev_normal).eta.numpy()
    y = [0] * 20 + [1] * 20
    assert rows[0]["ece_a"] == pytest.approx(calad.metrics.ece(y, np.r_[e0[:20], ea], 5), abs=1e-6)
    y30 = [0] * 30 + [1] * 30
    assert rows[1]["ece_b"] == pytest.approx(calad.metrics.ece(y30, np.r_[e0p, eb[:30]], 5), abs=1e-6)
    assert rows[1]["mce_b"] == pytest.approx(calad.metrics.mce(y30, np.r_[e0p, eb[:30]], 5), abs=1e-6)
    assert sum(rows[0]["rel_a"]["count"]) == 40
    if cals[0].calibrator.a_ > 0:           # an increasing calibration map keeps the ranking
        assert rows[1]["auroc"] == pytest.approx(rows[0]["auroc"], abs=1e-9)
    assert 0 <= rows[0]["spread_auroc_a"] <= 1 and rows[0]["spread_normal"] >= 0
    assert "spread_normal" not in rows[1]
    with pytest.raises(ValueError, match="CalibratedModels of this very model"):
        U.evaluate(cals[0], normal=ev_normal, anomalies=sets, test_x=test_x, test_y=test_y, calibrated=cals)
    with pytest.raises(ValueError, match="anomaly set"):
        U.evaluate(model, normal=ev_normal, anomalies={}, test_x=test_x, test_y=test_y)


def _summary():
    """A synthetic :func:`U.summarize` frame: OE and Platt lower the ECE on OE, raise it on real anomalies."""
    import pandas as pd

    rows = {}
    for i, m in enumerate(U.METHODS):
        for r in U.REGIMES:
            for c in U.CALIBRATIONS:
                oe = 0.3 - 0.1 * (r == "OE") - 0.1 * (c != "none")
                rows[(m, r, c)] = {"auroc": 0.7 + 0.1 * (r == "OE") - 0.01 * i, "ece_oe": oe, "ece_real": oe + 0.2,
                                   "mce_oe": 2 * oe, "mce_real": 2 * oe + 0.1, "eta_normal": 0.2,
                                   "eta_oe": 0.8, "eta_real": 0.5}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = ["method", "training anomalies", "calibration"]
    return out


def test_claims_count_methods_and_margins():
    s = _summary()
    cl = U.claims(s)
    assert list(cl.index) == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert (cl["count"] == 5).all() and (cl["verdict"] == "holds for all 5 methods").all()
    assert cl.loc["C1", "mean_diff"] == pytest.approx(0.1) and cl.loc["C2", "mean_diff"] == pytest.approx(0.2)
    assert cl.loc["C1", "claim"].startswith("C1 ")
    # one method where OE does not lower the ECE on held-out OE: C1 becomes mixed
    s.iloc[s.index.get_loc(("hsc", "OE", "none")), s.columns.get_loc("ece_oe")] = 0.5
    cl = U.claims(s)
    assert cl.loc["C1", "verdict"] == "mixed: 4 of 5 methods" and "hsc" not in cl.loc["C1", "holds for"]
    assert calad.report.status_of(cl.loc["C1", "verdict"]) == "open"
    assert calad.report.status_of("fails for all 5 methods") == "fails"
    ece = U.metric_table(s, "ece")
    assert ece.shape == (10, 6) and ece.loc[("hsc", "OE"), ("held-out OE", "none")] == 0.5
    reg = U.regime_table(s)
    assert list(reg.index) == list(U.REGIME_LABELS.values())
    assert reg.loc["neither", "ece_oe"] == pytest.approx(0.3) and reg.loc["OE + Platt", "ece_oe"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="metric"):
        U.metric_table(s, "brier")


def test_run_experiments_is_resumable(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    params = dict(preset="test", seed=0, normal_classes=[0], no_oe_source="uniform_noise", n_train=16, epochs=1,
                  milestones=[], ensemble_size=1, dropout=0.2, mc_passes=2, n_calib=16, n_eval=20, n_test=100,
                  n_bins=5)
    store = calad.runs.ResultStore(tmp_path / "results")
    res = U.run_experiments(params, store=store, progress=False)
    assert len(res) == len(U.METHODS) * len(U.REGIMES) * len(U.CALIBRATIONS)
    assert set(res["calibration"]) == set(U.CALIBRATIONS) and res["auroc"].between(0, 1).all()
    # a second call reads the stored rows and trains nothing
    monkeypatch.setattr(U.experiment, "run_one", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = U.run_experiments(params, store=store, progress=False)
    assert again[["method", "calibration", "ece_oe"]].equals(res[["method", "calibration", "ece_oe"]])
    s = U.summarize(res)
    assert s.index.tolist()[:3] == [("logistic", "no OE", c) for c in U.CALIBRATIONS] and len(s) == 30
    assert U.spread_table(res).shape == (4, 5)
    fig = U.reliability_figure(res, "real", title="t")
    assert calad.plots.panels_per_row(fig) == 3
    fig2 = U.ece_figure(s)
    import matplotlib.pyplot as plt

    plt.close(fig), plt.close(fig2)
    with pytest.raises(ValueError, match="needs the parameters"):
        U.run_experiments({"seed": 0}, store=store)
