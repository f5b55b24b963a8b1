"""The trainer (§4.2.1): configuration checks, balanced OE batches, determinism and the model cache."""
import warnings

import pytest
import torch

import calad_lib as calad
from calad_lib import train as T
from calad_lib.train import CacheWarning, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread", "model_cache")


def _normal(n=40, seed=0, size=28):
    g = torch.Generator().manual_seed(seed)
    return (0.4 + 0.2 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)


def _oe(n=24, seed=1):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _cfg(**kw):
    base = dict(loss="svdd", dataset="fashion_mnist", epochs=1, milestones=(), batch_size=16, augment=False)
    return TrainConfig(**{**base, **kw})


class _Counter:
    """Wraps ``train._fit`` to count how often a model is actually trained."""

    def __init__(self, monkeypatch):
        self.calls, self._fit = 0, T._fit
        monkeypatch.setattr(T, "_fit", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._fit(*args, **kwargs)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kwargs", [dict(loss="focal"), dict(dataset="imagenet"), dict(epochs=0),
                                    dict(milestones=(150, 100)), dict(split="half"), dict(lr=-1.0),
                                    dict(batch_size=1), dict(weight_decay=-0.1), dict(crop=3),
                                    dict(weights="vgg.pth")])
def test_config_is_validated_on_construction_with_one_line_errors(kwargs):
    with pytest.raises(ValueError) as err:
        _cfg(**kwargs)
    assert "\n" not in str(err.value)


def test_bad_data_fails_before_any_training(monkeypatch):
    counter = _Counter(monkeypatch)
    for cfg, normal, oe in [(_cfg(loss="hsc"), _normal(), None), (_cfg(), (_normal() * 255).byte(), None),
                            (_cfg(loss="logistic"), _normal(), torch.rand(5, 3, 28, 28)),
                            (_cfg(), torch.rand(1, 1, 28, 28), None), (_cfg(), _normal() * 3, None),
                            (_cfg(loss="hsc"), _normal(), _oe() + 1)]:
        with pytest.raises(ValueError) as err:
            calad.train.train(cfg, normal, oe, progress=False)
        assert "\n" not in str(err.value)
    assert counter.calls == 0


def test_cache_reuses_a_trained_model_instead_of_training(monkeypatch):
    counter = _Counter(monkeypatch)
    cfg, x = _cfg(), _normal()
    first = calad.train.train(cfg, x, progress=False)
    path = T.cache_path(cfg, x)
    assert path.is_file() and path.parent.name == "models" and counter.calls == 1
    mtime = path.stat().st_mtime_ns
    again = calad.train.train(cfg, x, progress=False)
    assert counter.calls == 1 and path.stat().st_mtime_ns == mtime
    assert _same_weights(first, again) and not again.training
    assert torch.equal(again.c, first.c)
    # the flag says what happened (trained here, then loaded); the epoch times are those of the training run
    assert first.fit_info["cached"] is False and again.fit_info["cached"] is True
    assert len(first.fit_info["epoch_seconds"]) == cfg.epochs and min(first.fit_info["epoch_seconds"]) > 0
    assert again.fit_info["epoch_seconds"] == first.fit_info["epoch_seconds"]
    loaded = calad.train.load_cached(cfg, x)
    assert loaded is not None and _same_weights(first, loaded)


def test_other_configuration_or_data_is_not_reused(monkeypatch):
    counter = _Counter(monkeypatch)
    x = _normal()
    calad.train.train(_cfg(), x, progress=False)
    calad.train.train(_cfg(seed=1), x, progress=False)
    calad.train.train(_cfg(), _normal(seed=5), progress=False)
    assert counter.calls == 3
    assert calad.train.load_cached(_cfg(lr=1e-3), x) is None
    # OE data is part of the key for supervised losses only
    assert T.cache_path(_cfg(loss="hsc"), x, _oe()) != T.cache_path(_cfg(loss="hsc"), x, _oe(seed=2))
    assert T.cache_path(_cfg(), x, _oe()) == T.cache_path(_cfg(), x, None)


def test_a_mismatched_file_is_reported_and_retrained(monkeypatch):
    counter = _Counter(monkeypatch)
    x = _normal()
    calad.train.train(_cfg(seed=1), x, progress=False)
    # a file holding another configuration's model at this configuration's path
    T.cache_path(_cfg(seed=1), x).replace(T.cache_path(_cfg(), x))
    with pytest.warns(CacheWarning) as rec:
        model = calad.train.train(_cfg(), x, progress=False)
    msgs = [str(w.message) for w in rec if issubclass(w.category, CacheWarning)]
    assert len(msgs) == 1 and "\n" not in msgs[0] and "does not match" in msgs[0] and "config" in msgs[0]
    assert counter.calls == 2
    # the retrained model replaced it and is now reused silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _same_weights(calad.train.train(_cfg(), x, progress=False), model)
    assert counter.calls == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupted_file_is_reported_in_one_line_and_retrained(monkeypatch, damage):
    counter = _Counter(monkeypatch)
    cfg, x = _cfg(), _normal()
    good = calad.train.train(cfg, x, progress=False)
    path = T.cache_path(cfg, x)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 100, "empty": b""}[damage])
    with pytest.warns(CacheWarning) as rec:
        again = calad.train.train(cfg, x, progress=False)
    msgs = [str(w.message) for w in rec if issubclass(w.category, CacheWarning)]
    assert len(msgs) == 1 and "\n" not in msgs[0] and "unreadable" in msgs[0]
    assert counter.calls == 2
    assert _same_weights(good, again)                  # retrained deterministically
    assert again.fit_info["cached"] is False           # a file that was there but did not load is not "cached"
    assert calad.train.load_cached(cfg, x) is not None  # and the file is whole again


def test_training_is_deterministic_on_the_cpu():
    x = _normal()
    a = calad.train.train(_cfg(epochs=2, augment=True), x, progress=False, cache=False)
    b = calad.train.train(_cfg(epochs=2, augment=True), x, progress=False, cache=False)
    c = calad.train.train(_cfg(epochs=2, augment=True, seed=3), x, progress=False, cache=False)
    assert _same_weights(a, b) and not _same_weights(a, c)


def test_svdd_centre_is_the_mean_initial_output_and_leaves_batch_norm_untouched():
    torch.manual_seed(0)
    x = _normal(33)
    model = calad.losses.build_model("svdd", (1, 28, 28), *calad.losses.input_stats(x))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    c = T._initial_center(model, x, 16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.train()
    with torch.no_grad():   # batches of 16, 17 (a last batch of one joins the one before)
        ref = torch.cat([model.head_features(x[:16]), model.head_features(x[16:])]).mean(0)
    assert torch.allclose(c, ref, atol=1e-6)
    trained = calad.train.train(_cfg(), x, progress=False, cache=False)
    assert (trained.c.abs() >= 0.1 - 1e-7).all()


def test_supervised_batches_are_half_normal_half_oe_and_augmented(monkeypatch):
    seen, augmented = [], []
    build = calad.losses.build_model

    def spy_build(*args, **kwargs):
        model = build(*args, **kwargs)
        inner = model.loss

        def loss(x, y):
            seen.append((len(y), int(y.sum())))
            return inner(x, y)

        model.loss = loss
        return model

    class StubAugment:
        def __call__(self, x, generator=None):
            assert isinstance(generator, torch.Generator)
            augmented.append(x.shape[0])
            return x.flip(-1)

    monkeypatch.setattr(T._losses, "build_model", spy_build)
    monkeypatch.setattr(T, "_make_augment", lambda cfg: StubAugment())
    model = calad.train.train(_cfg(loss="hsc", batch_size=16, epochs=2), _normal(40), _oe(12), progress=False,
                              cache=False)
    assert seen == [(16, 8), (16, 8), (16, 8), (16, 8), (16, 8), (16, 8), (16, 8), (16, 8), (16, 8), (16, 8)]
    assert augmented == [n for n, _ in seen]
    assert not model.training


def test_crop_sets_the_model_input_size_and_learning_rate_milestones(monkeypatch):
    lrs = []
    step = torch.optim.lr_scheduler.MultiStepLR.step

    def spy(self, *a, **k):
        step(self, *a, **k)
        lrs.append(self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(torch.optim.lr_scheduler.MultiStepLR, "step", spy)
    x = _normal(20, size=36)
    model = calad.train.train(_cfg(loss="ssim", crop=28, epochs=3, milestones=(1, 2), lr=1e-2), x, progress=False,
                              cache=False)
    assert model.in_shape == (1, 28, 28)
    assert lrs[-3:] == pytest.approx([1e-3, 1e-4, 1e-4])   # after epochs 1, 2, 3
    assert model.outputs(x[:2, :, 4:32, 4:32]).score.shape == (2,)


def test_an_unwritable_cache_folder_is_reported_before_any_training(monkeypatch, tmp_path):
    counter = _Counter(monkeypatch)
    blocker = tmp_path / "cache-file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CALAD_CACHE", str(blocker))
    with pytest.raises(calad.runs.StoreError, match="cache folder .* is not writable") as err:
        calad.train.train(_cfg(), _normal(), progress=False)
    assert counter.calls == 0 and "\n" not in str(err.value)
    assert calad.train.train(_cfg(), _normal(), progress=False, cache=False) is not None   # no cache: trains
