"""One detection experiment (thesis §4.2–§4.3.1): configuration checks, rows against independent evaluations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import calad_lib as calad
from calad_lib.detection.experiment import METHODS, THESIS_METHODS, ExperimentConfig, prepare, run_experiment

TINY = dict(dataset="fashion_mnist", normal_class=1, loss="svdd", seed=3, epochs=1, milestones=(), lr=1e-3,
            batch_size=32, n_train=160, n_calib=128, n_test_normal=80, n_test_anomalous=80, n_heldout=80, n_oe=128,
            head_epochs=2, head_lr=1e-3)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("bad, match", [
    (dict(loss="fcdd"), "'loss' = 'fcdd' is not a known choice; allowed: .*svdd"),
    (dict(dataset="mnist"), "'dataset' = 'mnist' is not a known choice"),
    (dict(alpha=1.5), "'alpha' = 1.5 is above the maximum"),
    (dict(eps=-0.1), "'eps' = -0.1 is below the minimum"),
    (dict(eps=float("nan")), "'eps' = nan is not a finite number"),
    (dict(n_calib=0), "'n_calib' = 0 is below the minimum"),
    (dict(n_train=True), "'n_train' = True is not an integer"),
])
def test_bad_configuration_fails_in_one_line(bad, match):
    with pytest.raises(ValueError, match=match) as err:
        ExperimentConfig(**{**TINY, **bad})
    assert "\n" not in str(err.value)


def test_config_round_trips_and_names_the_loader_dataset():
    cfg = ExperimentConfig(**TINY)
    assert ExperimentConfig.from_dict(cfg.as_dict()) == cfg
    assert cfg.data_name == "fashion_mnist"
    assert ExperimentConfig(**{**TINY, "dataset": "mvtec", "normal_class": "bottle", "n_train": None}).data_name \
        == "mvtec:bottle"
    with pytest.raises(TypeError, match="ExperimentConfig"):
        run_experiment(cfg.as_dict())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_thread):
    mp = pytest.MonkeyPatch()
    mp.setenv("CALAD_CACHE", str(tmp_path_factory.mktemp("cache")))
    cfg = ExperimentConfig(**TINY)
    prep = prepare(cfg)
    rows = {r["method"]: r for r in run_experiment(cfg, preset="test", threads=1)}  # models from the cache now
    yield cfg, prep, rows
    mp.undo()


@pytest.mark.slow
def test_rows_match_independent_evaluation(tiny):
    """Each row equals calad.metrics.evaluate on the model itself (the shared base pass changes nothing)."""
    cfg, prep, rows = tiny
    d, syn, models = prep["data"], prep["synthetic"], prep["models"]
    assert list(rows) == list(METHODS)
    assert set(THESIS_METHODS) <= set(rows)
    normal = d["test_x"][d["test_y"] == 0]
    for method in ("fully_trained", "base", "calhead_spectral", "platt_oe", "beta_naive_spectral"):
        model = models[method]
        src = "spectral" if method.endswith("spectral") else "oe"
        ref = calad.perturbation.evaluate(model, d["test_x"], d["test_y"], calib_normal=normal,
                                     calib_anomalies=syn["heldout"][src][:len(normal)], eps=cfg.eps)
        for key in ("auroc", "auroc_perturbed", "kappa", "ece", "mce"):
            assert rows[method][key] == pytest.approx(ref[key], abs=1e-6), (method, key)
        assert rows[method]["ece_source"] == src
        assert rows[method]["preset"] == "test" and rows[method]["loss"] == "svdd" and "commit" in rows[method]
        # measured sizes and the configuration's caps are separate columns (a cap of None must not hide a count)
        assert rows[method]["test_normal_images"] == int((d["test_y"] == 0).sum()) == len(normal)
        assert rows[method]["test_anomalous_images"] == int(d["test_y"].sum())
        assert rows[method]["n_test_normal"] == cfg.n_test_normal
    assert rows["fully_trained"]["train_images"] == len(d["full"]) > rows["base"]["train_images"] == len(d["train"])


@pytest.mark.slow
def test_shared_calibration_pass_equals_calibrate(tiny):
    cfg, prep, _ = tiny
    d, syn, models = prep["data"], prep["synthetic"], prep["models"]
    aug = calad.data.Augment()
    for src, method in (("spectral", "platt"), ("oe", "beta_naive")):
        ref = calad.calibration.calibrate(models["base"], method, normal=d["calib"], anomalous=syn["calib"][src],
                                          n=cfg.n_calib, augment=aug, augment_anomalous=src == "oe", seed=cfg.seed,
                                          progress=False)
        assert models[f"{method}_{src}"].calibrator.coefficients() == pytest.approx(ref.calibrator.coefficients(), rel=1e-12)


@pytest.mark.slow
def test_conformal_columns_by_brute_force(tiny):
    cfg, prep, rows = tiny
    d, m = prep["data"], prep["models"]["platt_oe"]
    y = d["test_y"].numpy()
    with torch.no_grad():
        s_test = m.score(d["test_x"]).numpy().astype(np.float64)
        s_cal = m.score(d["calib"]).numpy().astype(np.float64)
    p = (1 + (s_cal[None, :] >= s_test[:, None]).sum(1)) / (len(s_cal) + 1)
    assert rows["platt_oe"]["conformal_fpr"] == pytest.approx(np.mean(p[y == 0] <= cfg.alpha), abs=1e-9)
    order = np.sort(p)
    k = max([i + 1 for i in range(len(p)) if order[i] <= cfg.alpha * (i + 1) / len(p)], default=0)
    reject = p <= (order[k - 1] if k else -1)
    assert rows["platt_oe"]["bh_rejections"] == reject.sum()
    assert rows["platt_oe"]["bh_power"] == pytest.approx(reject[y == 1].mean())


@pytest.mark.slow
def test_monotone_calibrators_keep_the_base_ranking(tiny):
    _, _, rows = tiny
    base = rows["base"]["auroc"]
    pairs = rows["base"]["n_test_normal"] * rows["base"]["n_test_anomalous"]
    for m in ("beta_oe", "beta_spectral", "platt_oe", "platt_spectral"):
        increasing = rows[m]["cal_a"] > 0 if m.startswith("platt") else rows[m]["cal_a"] + rows[m]["cal_b"] > 0
        expected = base if increasing else 1 - base
        # a monotone float32 map may merge two nearly equal scores into a tie: allow two pairs
        assert rows[m]["auroc"] == pytest.approx(expected, abs=2 / pairs), m


def test_heldout_anomalies_are_disjoint_from_calibration_ones():
    cfg = ExperimentConfig(**TINY)
    from calad_lib.detection.experiment import _data, _synthetic

    syn = _synthetic(cfg, _data(cfg))
    for src in ("oe", "spectral"):
        cal = syn["calib"][src].flatten(1)
        held = syn["heldout"][src].flatten(1)
        assert torch.cdist(held, cal).min() > 1e-3, src
    train_oe = syn["oe_train"].flatten(1)
    assert torch.cdist(syn["heldout"]["oe"].flatten(1), train_oe).min() > 1e-3
