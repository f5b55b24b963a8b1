"""The §5.1 protocol: datasets, splits, metrics, and resumable runs."""
import numpy as np
import pandas as pd
import pytest
import torch

import calad_lib.eap.datasets as DS
from calad_lib.eap import evaluation as E
from calad_lib.eap import experiment as X


def _rows(a):
    return {tuple(np.round(r, 6)) for r in a}


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris", "digits:3"])
def test_split_follows_the_protocol(name):
    Xr, yr = DS.load_dataset(name, max_normals=400)
    A = int(yr.sum())
    s = DS.make_split(name, 0, max_normals=400)
    third = round(0.4 * A)
    assert len(s.y_test) == 2 * round(0.5 * A) and s.y_test.mean() == 0.5          # balanced test set
    assert np.bincount(s.aux_kind).tolist() == [third] * 3                          # l/3 of each kind
    assert s.y_train.sum() == A - round(0.5 * A) - third                            # the remaining ~10 %
    assert len(s.y_train) + len(s.y_test) + 2 * third == len(yr)                     # every example used once
    np.testing.assert_allclose(s.X_train.mean(0), 0, atol=1e-9)                     # z-scored on D
    assert not _rows(s.X_train) & _rows(s.X_test) and not _rows(s.X_train) & _rows(s.X_aux)
    assert s.good.sum() == third and name.split(":")[0] not in ",".join(s.sources)
    s2 = DS.make_split(name, 0, max_normals=400)
    assert np.array_equal(s.X_aux, s2.X_aux) and np.array_equal(s.aux_kind, s2.aux_kind)  # seeded
    assert not np.array_equal(DS.make_split(name, 1, max_normals=400).X_train[:5], s.X_train[:5])


def test_realistic_and_indistinguishable_come_from_the_dataset():
    s = DS.make_split("wine", 2)
    Xr, yr = DS.load_dataset("wine")
    raw = lambda P: P * s.info["std"] + s.info["mean"]  # noqa: E731  (undo the z-scoring)
    assert _rows(raw(s.X_aux[s.aux_kind == 0])) <= _rows(Xr[yr == 1])   # realistic: real anomalies
    assert _rows(raw(s.X_aux[s.aux_kind == 1])) <= _rows(Xr[yr == 0])   # indistinguishable: normals
    assert not _rows(raw(s.X_aux[s.aux_kind == 2])) & _rows(Xr)          # unrealistic: from elsewhere
    # unrealistic examples are stretched projections: on average further from the training data
    dist = lambda P: np.linalg.norm(P[:, None] - s.X_train[None], axis=-1).min(1).mean()  # noqa: E731
    assert dist(s.X_aux[s.aux_kind == 2]) > dist(s.X_aux[s.aux_kind == 0])


def test_dataset_errors_are_one_line():
    for bad in ("mnist", "digits:12", "fmnist:x", "wine:1"):
        with pytest.raises(ValueError, match="unknown dataset") as e:
            DS.make_split(bad, 0)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="too few anomalies"):
        DS.make_split("breast_cancer", 0, max_anomalies=3)
    with pytest.raises(ValueError, match="unrealistic_scale"):
        DS.make_split("wine", 0, unrealistic_scale=0)


class _FakeData:
    def __init__(self, n):
        g = torch.Generator().manual_seed(n)
        self.labels = torch.arange(n) % 10
        self.images = torch.rand(n, 1, 28, 28, generator=g) * 0.2 + self.labels.float().view(-1, 1, 1, 1) / 12

    def __len__(self):
        return len(self.labels)


@pytest.mark.parametrize("features", ["pca", "svdd"])
def test_fmnist_features_through_the_data_loader(monkeypatch, tmp_path, features):
    import calad_lib.data as data

    monkeypatch.setattr(data, "load", lambda name, train=True, **kw: _FakeData(1200 if train else 300))
    monkeypatch.setenv("CALAD_CACHE", str(tmp_path))
    for f in (DS._fmnist, DS._pca, DS._svdd):
        f.cache_clear()
    try:
        s = DS.make_split("fmnist:4", 0, max_normals=100, max_anomalies=60, features=features, feature_epochs=1)
        assert s.X_train.shape[1] == 32 and DS.kind_of("fmnist:4") == "image"
        assert len(s.y_test) == 60 and np.bincount(s.aux_kind).tolist() == [24, 24, 24]
        assert np.isfinite(s.X_aux).all()
    finally:
        for f in (DS._fmnist, DS._pca, DS._svdd):
            f.cache_clear()
    with pytest.raises(ValueError, match="unknown feature map"):
        DS.load_dataset("fmnist:1", features="vit")


# --- metrics --------------------------------------------------------------------------------------------
def test_auc_qlt_and_ranking_by_hand():
    assert E.auc_qlt([3, 1, 2], [1, 0, 0]) == 1.0
    assert E.auc_qlt([1, 3, 2], [1, 0, 0]) == 0.0
    assert E.auc_qlt([1, 1, 1, 1], [1, 0, 1, 0]) == 0.5
    assert E.ranking([0.2, 0.9, 0.5]).tolist() == [1, 2, 0]
    tied = E.ranking(np.zeros(20), random_state=0)
    assert sorted(tied) == list(range(20)) and tied.tolist() != list(range(20))


def test_learning_curve_areas_by_hand():
    assert E.curve_counts(30, 1 / 3, 3).tolist() == [0, 5, 10]
    assert E.curve_counts(30, 2 / 3, 5).tolist() == [0, 5, 10, 15, 20]
    # trapezoid over x = 0, 1/6, 1/3: (0.6 + 0.8)/6 / (1/3) = 0.7
    assert E.aulc([0, 5, 10], [0.5, 0.7, 0.9], 30) == pytest.approx(0.7)
    assert E.aulc([0, 10, 20], [0.5, 0.5, 1.0], 30) == pytest.approx(0.625)


def test_learning_curves_cache_identical_training_sets():
    s = DS.make_split("wine", 0)
    lc = E.LearningCurves(s.X_train, s.y_train, s.X_aux, s.X_test, s.y_test, n_estimators=5)
    a = lc.curve(np.arange(len(s.X_aux)), [0, 3, 6])
    b = lc.curve(np.r_[[2, 1, 0], np.arange(3, len(s.X_aux))], [0, 3])
    assert lc.fits == 3 and a[1] == b[1] and 0 <= a.min() <= a.max() <= 1
    with pytest.raises(ValueError, match="unknown learning-curve model"):
        E.LearningCurves(s.X_train, s.y_train, s.X_aux, s.X_test, s.y_test, model="mlp")


def test_average_ranks_by_hand():
    df = pd.DataFrame({"dataset": ["a"] * 3 + ["b"] * 3, "seed": 0, "method": list("xyz") * 2,
                       "auc_qlt": [0.9, 0.5, 0.5, 0.1, 0.2, 0.3], "aulc_p": [0.1, 0.2, 0.3, 0.3, 0.3, 0.1]})
    r = E.average_ranks(df, metrics=("auc_qlt", "aulc_p")).groupby("method")[["rauc_qlt", "raulc_p"]].mean()
    assert r.loc["x"].tolist() == [2.0, 1.75] and r.loc["y"].tolist() == [2.25, 2.25]
    assert r.loc["z"].tolist() == [1.75, 2.0]


# --- runs ---------------------------------------------------------------------------------------------
def test_runs_are_seeded_stored_and_resumed(tmp_path, monkeypatch):
    monkeypatch.setenv("CALAD_RESULTS", str(tmp_path))
    opts = dict(methods=["EAP", "Rarity", "RandomEV"], priors=[0.1], lc_steps=3, rf_trees=5, n_models=5)
    df = X.run_grid(["wine"], [0, 1], preset="unit", progress=False, **opts)
    main = df[df.study == "main"]
    assert len(main) == 6 and set(df[df.study == "prior"].method) == {"EAP_0.1", "EAP"}
    assert main[["auc_qlt", "aulc_g", "acc_g", "aulc_p"]].notna().all().all()
    assert len(list((tmp_path / "07_eap" / "unit").glob("*.json"))) == 2
    again = X.run_one(X.run_config("wine", 0, **opts))
    first = main[(main.seed == 0)].set_index("method")
    for r in again[:3]:
        assert first.loc[r["method"], "auc_qlt"] == r["auc_qlt"] and first.loc[r["method"], "lc_g"] == r["lc_g"]

    def boom(config):
        raise AssertionError("a stored run was recomputed")

    monkeypatch.setattr(X, "run_one", boom)
    df2 = X.run_grid(["wine"], [0, 1], preset="unit", progress=False, **opts)
    assert len(df2) == len(df)
    with pytest.raises(ValueError, match="unknown method"):
        X.run_grid(["wine"], [0], preset="unit", methods=["nope"])
    with pytest.raises(ValueError, match="unknown dataset"):
        X.run_config("cifar", 0)


def test_stretch_study_reuses_the_main_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CALAD_RESULTS", str(tmp_path))
    opts = dict(lc_steps=3, rf_trees=5, n_models=5)
    methods = ["EAP", "P_x"]
    main = X.run_grid(["wine"], [0], preset="unit", progress=False, methods=methods, **opts)
    sens = X.stretch_study(main, ["wine"], [0], [1.0], preset="unit", unrealistic_scale=3.0, methods=methods, **opts)
    assert list(sens.columns) == ["scale 3", "scale 1"] and list(sens.index) == methods
    assert sens.loc["EAP", "scale 3"] == main.set_index("method").loc["EAP", "auc_qlt"]
    low = X.run_grid(["wine"], [0], preset="unit", progress=False, methods=methods, priors=[], unrealistic_scale=1.0,
                     curves=False, **opts)
    assert sens.loc["P_x", "scale 1"] == low.set_index("method").loc["P_x", "auc_qlt"]


def _summary():
    from calad_lib.eap import paper

    return paper.table1("tabular")


def test_tables_position_and_keys():
    from calad_lib.eap import tables as T

    t = _summary()
    assert T.position(t, "auc_qlt") == 1 and T.position(t, "avg_rank") == 1
    assert T.position(t, "auc_qlt", "DataBanzhaf") == 13 and T.position(t, "aulc_p", "EAP") == 1   # lower is better
    assert T.position(t, "rauc_qlt", "LAVA") == 3
    assert T.key("P_y|x+NP_x") == "p_yx_plus_np_x" and T.key("fmnist:0") == "fmnist_0" and T.key("R'") == "r_prime"
    assert T.keyed(t[["auc_qlt"]]).index[0] == "eap" and T.count(1, "seed") == "1 seed" and T.count(2, "seed") == "2 seeds"
    assert T.lower_is_better("aulc_p") and T.lower_is_better("rauc_qlt") and not T.lower_is_better("acc_g")


def test_tables_bold_the_best_of_each_column():
    from calad_lib import report
    from calad_lib.eap import tables as T

    t = _summary()
    html = T.summary(t).to_html()
    assert 'colspan="4">mean<' in html and "AULC_P ↓" in html and html.count("font-weight: 700") == 1
    report._made -= 1                     # the same table at the same place of a run renders the same HTML
    assert T.summary(t).to_html() == html
    sty = T.compare_columns(t[["auc_qlt", "aulc_p"]], t[["auc_qlt", "aulc_p"]] - 0.01)
    cells = sty.data
    assert cells.loc["EAP", "AUC_QLT"].startswith("<b>0.821</b> / <b>0.811</b>")   # best AUC_QLT: EAP
    assert cells.loc["EAP", "AULC_P ↓"].startswith("<b>0.717</b> / <b>0.707</b>")  # lowest AULC_P: EAP
    assert not cells.loc["Rarity", "AUC_QLT"].startswith("<b>")
    assert "rgba(46, 125, 50" in sty.to_html() and "rgba(198, 40, 40" in sty.to_html()   # better / worse tints


def test_paper_checks_and_claims():
    from calad_lib.eap import paper
    from calad_lib.eap import tables as T

    checks = T.paper_checks()
    assert checks.loc["Table 1, tabular", "average = mean"] == "13 of 13"
    assert checks.loc["Table 1, image", "exceptions (printed vs mean)"] == "RandomEV: 7.38 vs 7.74"
    tables = {kind: paper.table1(kind) for kind in ("tabular", "image")}
    claims = T.claims(tables, {"tabular": 220, "image": 180}, prior=paper.table3())
    assert (claims.verdict == "holds").all(), claims                            # the paper agrees with itself
    few = T.claims(tables, {"tabular": 4, "image": 1})
    assert few.verdict.str.endswith("at this scale").all()
    assert few.index.get_level_values("group")[-1] == "image (1 run)"
    worse = tables["image"].copy()
    worse.loc["EAP", "rauc_qlt"] = 20.0
    assert T.claims({"image": worse}, {"image": 30}).loc[("image (30 runs)", "EAP ranks first on AUC_QLT"),
                                                         "verdict"] == "fails"
