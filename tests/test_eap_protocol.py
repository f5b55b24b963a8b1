"""The §5.1 protocol: datasets, splits, metrics, and resumable runs."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.cluster import KMeans

import calad_lib.eap.datasets as DS
from calad_lib.eap import evaluation as E
from calad_lib.eap import experiment as X
from calad_lib.eap import protocols as PR
from calad_lib.eap import unrealistic as U


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
    opts = dict(methods=["EAP", "Rarity", "RandomEV"], priors=[0.1], lc_steps=3, rf_trees=5, n_models=5, eap_subsets=3)
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
    opts = dict(lc_steps=3, rf_trees=5, n_models=5, protocol="calad")
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


# --- the authors' protocol (Lorenzo-Perini/ExpectedAnomalyPosterior, fetcher_tabular.py and dataval/api.py) ---

def test_capped_split_counts_by_hand():
    assert DS.split_counts(212, "proportional") == (106, 85, 21)
    assert DS.split_counts(212, "capped") == (106, 85, 21)          # within the caps: the same proportions
    assert DS.split_counts(1000, "capped") == (250, 250, 50)        # caps: 250 test, 250 per third, 50 training
    assert DS.split_counts(48, "capped") == (24, 19, 5)             # at least 5 training anomalies
    assert DS.split_counts(30, "capped") == (15, 10, 5)             # the third shrinks to what is left
    with pytest.raises(ValueError, match="unknown split"):
        DS.split_counts(100, "even")


def test_to_dimension_covers_the_four_cases():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6)) * np.arange(1, 7)
    same = U.to_dimension(X, 6)
    assert np.array_equal(same, X)                                  # already d columns: untouched
    low = U.to_dimension(X, 3)                                      # q = 6 > d: principal components
    assert low.shape == (60, 3)
    C = np.cov(low, rowvar=False)
    assert np.allclose(C - np.diag(np.diag(C)), 0, atol=1e-8) and np.all(np.diff(np.diag(C)) < 0)
    mid = U.to_dimension(X, 14)                                     # 3q >= d: [X, PCA, FA][:, :d]
    assert mid.shape == (60, 14) and np.array_equal(mid[:, :6], X)
    pcs = mid[:, 6:12]                                              # a full PCA: a rotation of the centred data
    assert np.allclose(np.linalg.norm(pcs, axis=1), np.linalg.norm(X - X.mean(0), axis=1))
    fa = set(map(tuple, np.round(mid[:, 12:].T, 9)))                # FA with q clusters of q features: raw columns
    assert fa <= set(map(tuple, np.round(X.T, 9)))
    high = U.to_dimension(X, 40)                                    # 3q < d: [PCA, FA, random projection]
    assert high.shape == (60, 40) and not np.allclose(high[:, :6], X)
    assert np.allclose(np.linalg.norm(high[:, :6], axis=1), np.linalg.norm(X - X.mean(0), axis=1))


def test_sources_are_subsampled_as_the_authors_do():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(900, int), np.ones(300, int)]
    keep = U.subsample_source(y, rng)
    assert (y[keep] == 1).sum() == 125 and len(keep) == 250 and len(set(keep)) == 250
    small = np.r_[np.zeros(100, int), np.ones(20, int)]
    assert sorted(U.subsample_source(small, rng)) == list(range(120))     # few normals: everything is kept


def test_benchmark_draws_raw_rows_stratified_by_source_and_class():
    rng = np.random.default_rng(1)
    data = {"a": (rng.normal(size=(200, 5)), np.r_[np.zeros(150, int), np.ones(50, int)]),
            "b": (rng.normal(size=(100, 5)) + 50, np.r_[np.zeros(80, int), np.ones(20, int)])}
    out = U.benchmark(["a", "b"], data.get, 5, 60, np.random.default_rng(2))
    rows_a, rows_b = _rows(data["a"][0]), _rows(data["b"][0])
    got = [tuple(np.round(r, 6)) for r in out]
    assert len(out) == 60 and all(r in rows_a or r in rows_b for r in got)     # d columns already: raw rows
    n_b = sum(r in rows_b for r in got)
    assert n_b == round(60 * 100 / 300)                                        # stratified by source


def test_unrealistic_anomalies_are_rescaled_with_the_targets_training_statistics(monkeypatch):
    d = DS.load_dataset("wine")[0].shape[1]
    B = np.arange(19 * d, dtype=float).reshape(19, d) * 7.0 - 300.0
    monkeypatch.setattr(U, "benchmark", lambda sources, load, dim, count, rng, random_state=0: B[:count])
    s = DS.make_split("wine", 0, unrealistic="benchmark", train_anomalies="kmeans", split="capped")
    raw_train = s.X_train * s.info["std"] + s.info["mean"]
    np.testing.assert_allclose(s.info["mean"], raw_train.mean(0))                     # target's training mean
    np.testing.assert_allclose(s.info["std"], raw_train.std(0, ddof=1))              # unbiased, as torch.std
    unreal = s.X_aux[s.aux_kind == 2]
    assert unreal.shape == (19, d)
    want = (B - s.info["mean"]) / s.info["std"]
    assert _rows(unreal) == _rows(want)


def test_benchmark_split_shapes():
    s = DS.make_split("breast_cancer", 0, unrealistic="benchmark", train_anomalies="kmeans", split="capped")
    third = int((s.aux_kind == 0).sum())
    assert np.bincount(s.aux_kind).tolist() == [third] * 3 and s.X_aux.shape[1] == s.X_train.shape[1] == 30
    assert "breast_cancer" not in s.sources and np.isfinite(s.X_aux).all()
    X, y = DS.load_dataset("breast_cancer")
    raw = s.X_aux[s.aux_kind == 2] * s.info["std"] + s.info["mean"]
    assert not _rows(raw) & _rows(X)


def test_training_anomalies_are_the_first_in_kmeans_cluster_order():
    X, y = DS.load_dataset("breast_cancer")
    s = DS.make_split("breast_cancer", 3, train_anomalies="kmeans", split="capped")
    raw_test = s.X_test * s.info["std"] + s.info["mean"]
    test_rows = _rows(raw_test[s.y_test == 1])
    rest = np.array([i for i in np.flatnonzero(y == 1) if tuple(np.round(X[i], 6)) not in test_rows])
    labels = KMeans(n_clusters=10, random_state=3, n_init="auto").fit(X[rest]).labels_
    m = int(s.y_train.sum())
    want = []                                   # brute force: walk the clusters in label order, index order inside
    for c in range(10):
        want += [i for i, lab in zip(rest, labels) if lab == c]
    assert _rows(s.info["train_anomalies"]) == _rows(X[want[:m]])
    assert _rows(s.X_train[s.y_train == 1] * s.info["std"] + s.info["mean"]) == _rows(X[want[:m]])
    chosen = labels[np.isin(rest, want[:m])]
    assert chosen.max() <= labels[~np.isin(rest, want[:m])].min()       # no later cluster before an earlier one


def test_curve_counts_and_unnormalised_area_by_hand():
    assert E.curve_counts(12, 1 / 3, None, "trapezoid").tolist() == [0, 1, 2, 3, 4]   # one anomaly at a time
    assert E.curve_counts(30, 1 / 3, 4, "trapezoid").tolist() == [0, 4, 9, 10]       # 3 points over [0, G-1], and G
    acc = [0.5, 0.6, 0.8, 0.9, 1.0]
    # np.trapz(acc[:G], dx=1/G) with G = 4: (0.55 + 0.7 + 0.85) / 4
    assert E.aulc(range(5), acc, 4, "trapezoid") == pytest.approx(0.525)
    assert E.aulc(range(5), acc, 4, "mean") == pytest.approx((0.55 + 0.7 + 0.85 + 0.95) / 4)
    # subsampled points: the trapezoid over the counts below G, still divided by G
    assert E.aulc([0, 2, 3, 4], [0.5, 0.8, 0.9, 1.0], 4, "trapezoid") == pytest.approx((0.65 * 2 + 0.85) / 4)
    with pytest.raises(ValueError, match="unknown AULC rule"):
        E.aulc([0, 1], [0.5, 0.5], 1, "simpson")


def test_protocols_resolve_flip_and_validate():
    a, c = PR.resolve("authors"), PR.resolve("calad")
    assert set(a) == set(c) == set(PR.CHOICES) and all(a[k] != c[k] for k in a)
    assert PR.resolve("authors", k_rule="calad")["k_rule"] == "calad" and PR.flip("eap_fit") == {"eap_fit": "once"}
    assert PR.changed({**a, "balls": "closed"}, "authors") == ["balls"]
    assert PR.estimator_options(a, 7) == {"k_rule": "authors", "centres": "normals", "closed": False,
                                          "threshold": "percentile", "subsets": 7}
    assert PR.estimator_options(c, 7)["subsets"] == 0
    for bad, msg in ((lambda: PR.resolve("paper"), "unknown protocol"), (lambda: PR.resolve(k_rule="x"), "must be"),
                     (lambda: PR.resolve(bins=3), "unknown protocol choice"), (lambda: PR.flip("aulc"), "unknown variant")):
        with pytest.raises(ValueError, match=msg) as e:
            bad()
        assert "\n" not in str(e.value)
    cfg = X.run_config("wine", 0)
    assert cfg["protocol"] == "authors" and all(cfg[k] == v for k, v in a.items())
    assert cfg["version"] == X.PROTOCOL_VERSION >= 2 and cfg["eap_subsets"] == 100 and cfg["rf_trees"] == 100
    assert cfg["lc_steps"] is None and "code" in cfg
    with pytest.raises(ValueError, match="eap_subsets"):
        X.run_config("wine", 0, eap_subsets=0)


def test_authors_run_and_variant_study(tmp_path, monkeypatch):
    monkeypatch.setenv("CALAD_RESULTS", str(tmp_path))
    opts = dict(lc_steps=3, rf_trees=5, n_models=5, eap_subsets=2)
    methods = ["EAP", "Rarity", "P_x", "RandomEV"]
    main = X.run_grid(["wine"], [0], preset="unit", progress=False, methods=methods, **opts)
    assert set(main.protocol) == {"authors"} and (main.changed == "").all()
    eap = main.set_index("method").loc["EAP"]
    G, counts = eap.l // 3, np.round(np.array(eap.x_g) * eap.l).astype(int)
    assert counts[-1] == G and counts[-2] == G - 1                  # the area stops at G - 1, ACC_G is at G
    area = sum((eap.lc_g[i] + eap.lc_g[i + 1]) / 2 * (counts[i + 1] - counts[i]) / G for i in range(len(counts) - 2))
    assert eap.aulc_g == pytest.approx(area) and eap.acc_g == eap.lc_g[-1]
    study = X.variant_study(main, ["wine"], [0], ["k_rule", "balls"], preset="unit", methods=methods, **opts)
    assert set(study.variant) == {"none", "k_rule", "balls"}
    k = study[study.method == "EAP"].set_index("variant").k_hat
    assert k["none"] == eap.k_hat and k["k_rule"] != k["none"]
    # RandomEV cannot change with k̂: its row is the protocol's own
    r = study[study.method == "RandomEV"].set_index("variant").auc_qlt
    assert r["k_rule"] == r["none"] == main.set_index("method").loc["RandomEV", "auc_qlt"]


def test_headline_and_variant_verdicts():
    from calad_lib.eap import comparison as C
    from calad_lib.eap import paper

    t = paper.table1("tabular")
    head = C.headline({"ours": {"tabular": t}}, {"ours": {"tabular": 4}})
    head = head.sort_index()
    assert (head.loc["paper", "verdict"] == "holds").all()                       # the paper agrees with itself
    assert head.loc[("ours", "tabular (4 runs)", "EAP has the best mean AUC_QLT"), "verdict"] == "holds at this scale"
    close = t.copy()
    close.loc["Rarity", "auc_qlt"] = close.loc["EAP", "auc_qlt"] - 0.001         # a near tie
    close.loc["Rarity", "avg_rank"] = 1.0                                       # Rarity ranks better on average
    h = C.headline({"ours": {"tabular": close}}, {"ours": {"tabular": 40}}, with_paper=False).sort_index()
    assert h.loc[("ours", "tabular (40 runs)", "EAP has the best mean AUC_QLT"), "verdict"] == "inconclusive: a near tie"
    assert h.loc[("ours", "tabular (40 runs)", "EAP has the best average rank"), "verdict"] == "fails"
    rows = pd.DataFrame({"variant": ["none"] * 4 + ["k_rule"] * 4, "method": ["EAP", "Rarity"] * 4,
                         "dataset": "a", "seed": [0, 0, 1, 1] * 2, "auc_qlt": [0.9, 0.7, 0.8, 0.6, 0.6, 0.7, 0.6, 0.8],
                         "k_hat": [40, np.nan, 42, np.nan, 20, np.nan, 22, np.nan]})
    v = C.variant_summary(rows)
    assert list(v.index) == ["authors' protocol", "k_rule → calad"]
    assert v.loc["authors' protocol", "EAP"] == pytest.approx(0.85) and v.loc["k_rule → calad", "EAP's place"] == 2
    assert v.loc["k_rule → calad", "k̂"] == 21 and v.loc["authors' protocol", "margin"] == pytest.approx(0.2)
    claims = C.variant_claims(v, 2)
    assert claims.verdict.tolist() == ["holds at this scale", "fails at this scale"]
