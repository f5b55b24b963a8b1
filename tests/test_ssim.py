"""The SSIM map (thesis §4.1.4) against scikit-image's ``structural_similarity``."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from calad_lib.losses.ssim import gaussian_window, ssim, ssim_map

SK = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)


def _pair(rng, shape, noise=0.15):
    a = rng.random(shape)
    b = np.clip(a + noise * rng.standard_normal(shape), 0, 1)
    return a, b


def _t(a):
    a = torch.tensor(a, dtype=torch.float64)
    return a[None, None] if a.ndim == 2 else a.permute(2, 0, 1)[None]


@pytest.mark.parametrize("shape", [(28, 28), (31, 24), (64, 64)])
@pytest.mark.parametrize("data_range", [1.0, 2.5])
def test_symmetric_padding_matches_skimage_everywhere(shape, data_range):
    rng = np.random.default_rng(sum(shape))
    a, b = _pair(rng, shape)
    a, b = a * data_range, b * data_range
    _, ref = structural_similarity(a, b, data_range=data_range, **SK)
    ours = ssim_map(_t(a), _t(b), data_range=data_range, padding="symmetric")[0].numpy()
    assert ours.shape == shape
    assert np.abs(ours - ref).max() < 1e-4


def test_constant_padding_matches_skimage_away_from_the_border_in_float32():
    # the thesis pads with the training mean; scikit-image mirrors the border. The two
    # definitions coincide wherever the 11×11 window stays inside the image: 5 pixels in.
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = _pair(rng, (40, 36), noise=rng.uniform(0.1, 0.5))
        _, ref = structural_similarity(a, b, data_range=1.0, **SK)
        ours = ssim_map(_t(a).float(), _t(b).float(), padding="constant", pad_value=0.37)[0].numpy()
        assert ours.shape == a.shape                      # same size as the image
        assert np.abs(ours - ref)[5:-5, 5:-5].max() < 1e-4
        assert np.abs(ours - ref).max() > 1e-3           # ... but the borders differ


def test_multichannel_is_the_channel_mean_as_in_skimage():
    rng = np.random.default_rng(1)
    a, b = _pair(rng, (30, 30, 3))
    _, ref = structural_similarity(a, b, data_range=1.0, channel_axis=2, **SK)
    ours = ssim_map(_t(a), _t(b), padding="symmetric")[0].numpy()
    assert np.abs(ours - ref.mean(axis=2)).max() < 1e-4
    # per-channel constant padding values are accepted
    per = ssim_map(_t(a), _t(b), padding="constant", pad_value=[0.2, 0.5, 0.7])[0].numpy()
    assert np.abs(per - ref.mean(axis=2))[5:-5, 5:-5].max() < 1e-4


def test_identity_range_valid_size_and_gradient():
    x = torch.rand(3, 1, 20, 20)
    assert torch.allclose(ssim_map(x, x, pad_value=0.5), torch.ones(3, 20, 20), atol=1e-5)
    y = torch.rand(3, 1, 20, 20, requires_grad=True)
    s = ssim_map(x, y, pad_value=0.5)
    assert s.min() >= -1 and s.max() <= 1
    s.mean().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert ssim_map(x, x.flip(-1), padding="valid").shape == (3, 10, 10)
    assert ssim(x, x, pad_value=0.5).shape == (3,)


def test_window_is_the_normalised_gaussian():
    w = gaussian_window(11, 1.5, dtype=torch.float64)
    t = torch.arange(-5, 6, dtype=torch.float64)
    ref = torch.exp(-t ** 2 / (2 * 1.5 ** 2))
    assert torch.allclose(w, ref / ref.sum())


def test_bad_arguments_raise_one_line_errors():
    x = torch.rand(1, 1, 16, 16)
    for kwargs in ({"padding": "constant"}, {"padding": "wrap"}, {"window": 4}, {"data_range": 0}):
        with pytest.raises(ValueError) as err:
            ssim_map(x, x, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError):
        ssim_map(x, torch.rand(1, 1, 16, 15), pad_value=0)
