"""Synthetic anomalies of calad_lib.synthesis (thesis §3.4, §4.2.1) against independent computations."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import calad_lib as calad  # noqa: E402
from fixtures_data import make_cifar  # noqa: E402

S = calad.synthesis


# --- spectral images ------------------------------------------------------------------------
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (3, (16, 24))])
def test_spectral_shape_range_seed(channels, size):
    x = S.spectral(9, channels=channels, size=size, seed=4)
    hw = (size, size) if isinstance(size, int) else size
    assert x.shape == (9, channels, *hw) and x.dtype == torch.float32
    flat = x.flatten(1)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(9))      # rescaled per image to [0, 1]
    torch.testing.assert_close(flat.max(1).values, torch.ones(9))
    assert torch.equal(x, S.spectral(9, channels=channels, size=size, seed=4))
    assert not torch.equal(x, S.spectral(9, channels=channels, size=size, seed=5))
    assert torch.equal(x[:3], S.spectral(3, channels=channels, size=size, seed=4))   # prefix-stable


def test_spectral_magnitude_follows_the_formula():
    """|FFT| of each image is c / (|f_x|^a + |f_y|^b) off the DC term (the rescaling only scales it)."""
    h, w = 16, 20
    x, ab = S.spectral(4, channels=2, size=(h, w), seed=1, return_slopes=True)
    assert torch.all((ab >= 0.5) & (ab <= 3.5))
    fy, fx = np.abs(np.fft.fftfreq(h))[:, None], np.abs(np.fft.fftfreq(w))[None, :]
    for i in range(4):
        a, b = ab[i].double().numpy()
        model = 1.0 / (fx ** a + fy ** b + (fx == 0) * (fy == 0))
        for c in range(2):
            mag = np.abs(np.fft.fft2(x[i, c].double().numpy()))
            ratio = (mag / model)[~((fx == 0) & (fy == 0))]
            np.testing.assert_allclose(ratio, ratio.mean(), rtol=2e-3)


def test_spectral_magnitude_dc_is_zero():
    m = S.spectral_magnitude(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 0.5]), (8, 8))
    assert m.shape == (2, 8, 5) and torch.all(m[:, 0, 0] == 0) and torch.isfinite(m).all()
    assert m[0, 0, 1] == pytest.approx(1 / (1 / 8))          # f_x = 1/8, f_y = 0, a = 1


def test_bad_arguments_raise_one_line():
    for kw in ({"n": -1}, {"n": 2, "channels": 0}, {"n": 2, "size": 1}):
        with pytest.raises(ValueError) as e:
            S.spectral(**kw)
        assert "\n" not in str(e.value)


def test_uniform_noise():
    x = S.uniform_noise(200, channels=3, size=8, seed=2)
    assert x.shape == (200, 3, 8, 8) and 0 <= x.min() and x.max() < 1
    assert abs(x.mean().item() - 0.5) < 0.01 and abs(x.var().item() - 1 / 12) < 0.005
    assert torch.equal(x, S.uniform_noise(200, channels=3, size=8, seed=2))


# --- power spectra and coverage -------------------------------------------------------------
def test_radial_power_spectrum_brute_force():
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64)
    f, p = S.radial_power_spectrum(x, window=False)
    assert np.allclose(f, [0.125, 0.25, 0.375, 0.5])
    xc = x.numpy() - x.numpy().mean(axis=(-2, -1), keepdims=True)
    pw = (np.abs(np.fft.fft2(xc)) ** 2).mean(axis=(0, 1)) / 64
    k = np.fft.fftfreq(8) * 8
    ring = np.round(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)).astype(int)
    ref = [pw[ring == r].mean() for r in range(1, 5)]
    np.testing.assert_allclose(p, ref, rtol=1e-10)
    _, per = S.radial_power_spectrum(x, window=False, reduce=False)
    assert per.shape == (3, 4) and np.allclose(per.mean(0), p)


def test_radial_power_spectrum_peak_and_slopes():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    wave = torch.cos(2 * np.pi * 5 * xx / 32).view(1, 1, 32, 32)
    f, p = S.radial_power_spectrum(wave, window=False)
    assert f[np.argmax(p)] == pytest.approx(5 / 32)
    f, p = S.radial_power_spectrum(S.uniform_noise(300, size=32, seed=0))
    assert abs(S.spectral_slope(f, p)[0]) < 0.3                # white noise is flat
    fr = np.linspace(0.05, 0.5, 20)
    alpha, c = S.spectral_slope(fr, 3.0 * fr ** -2.2)
    assert alpha == pytest.approx(2.2) and c == pytest.approx(np.log(3.0))
    f, p = S.radial_power_spectrum(S.spectral(300, size=32, seed=0))
    assert S.spectral_slope(f, p)[0] > 2                       # spectral images fall off like natural ones


def test_coverage_brute_force():
    rng = np.random.default_rng(0)
    ref, cand = rng.normal(size=(40, 3)), rng.normal(size=(25, 3)) + 0.5
    d_rr = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    radius = np.sort(d_rr, axis=1)[:, 3]                       # k = 3, the first column is the point itself
    d_rc = np.linalg.norm(ref[:, None] - cand[None], axis=-1).min(1)
    assert S.coverage(ref, cand, k=3) == pytest.approx(np.mean(d_rc < radius))
    assert S.coverage(ref, ref + 1e-9, k=3) == 1.0
    assert S.coverage(ref, ref + 100.0, k=3) == 0.0
    with pytest.raises(ValueError):
        S.coverage(ref, cand[:, :2])


# --- outlier exposure -------------------------------------------------------------------------
def test_oe_parts_are_disjoint_and_load_offline():
    names = [set(S.PHOTO_PARTS[p]) for p in S.PARTS]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    for part in S.PARTS:
        photos = S.photographs(part)
        assert len(photos) >= 5 and all(p.shape[0] == 3 and p.min() >= 0 and p.max() <= 1 for p in photos)
    # no two photographs across parts are the same picture (skimage's cat and chelsea are one photo)
    sigs = {tuple(p.shape) + (round(p.mean().item(), 6),) for part in S.PARTS for p in S.photographs(part)}
    assert len(sigs) == sum(len(S.PHOTO_PARTS[p]) for p in S.PARTS)


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (3, (20, 12))])
def test_oe_images(channels, size):
    x = S.oe_images(50, channels=channels, size=size, seed=3, part="calib")
    hw = (size, size) if isinstance(size, int) else size
    assert x.shape == (50, channels, *hw) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.flatten(1).std(1).mean() > 0.02
    assert torch.equal(x, S.oe_images(50, channels=channels, size=size, seed=3, part="calib"))
    assert not torch.equal(x, S.oe_images(50, channels=channels, size=size, seed=3, part="train"))
    with pytest.raises(ValueError):
        S.oe_images(5, part="validation")


def test_oe_crops_of_a_ramp_are_ramps():
    """A crop of a linear ramp resized by area averaging is again linear along x and constant along y."""
    from calad_lib.synthesis.oe import _crops

    ramp = torch.linspace(0, 1, 300).view(1, 1, 300).expand(3, 200, 300).contiguous()
    out = _crops([ramp], 20, 12, 12, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.allclose(out.diff(dim=-2), torch.zeros(1), atol=1e-5)
    d = out.diff(dim=-1)
    assert torch.allclose(d, d[..., :1], atol=1e-4) and torch.all(d > 0)
    const = _crops([torch.full((3, 50, 70), 0.3)], 5, 8, 8, torch.Generator().manual_seed(0), torch.device("cpu"))
    torch.testing.assert_close(const, torch.full_like(const, 0.3))


def test_oe_from_cifar100_and_folder(tmp_path):
    make_cifar(tmp_path, "cifar100", n_train=30, n_test=20)
    tr = S.oe_images(10, channels=3, size=32, part="train", source="cifar100", root=tmp_path)
    ca = S.oe_images(10, channels=3, size=32, part="calib", source="cifar100", root=tmp_path)
    te = S.oe_images(10, channels=3, size=32, part="test", source="cifar100", root=tmp_path)
    raw = make_cifar(tmp_path / "again", "cifar100", n_train=30, n_test=20)
    pool = {k: torch.from_numpy(v[0]).float().div(255).view(-1, 3, 32, 32) for k, v in raw.items() if k != "classes"}

    def rows_in(x, bank):
        return all(any(torch.equal(r, b) for b in bank) for r in x)

    assert rows_in(tr, pool["train"]) and rows_in(ca, pool["test"][:10]) and rows_in(te, pool["test"][10:])
    g = S.oe_images(4, channels=1, size=28, part="train", source="cifar100", root=tmp_path)
    assert g.shape == (4, 1, 28, 28)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(np.full((30, 40, 3), 30 * i, np.uint8)).save(folder / f"{i}.png")
    x = S.oe_images(6, channels=1, size=16, part="calib", source=folder)
    assert set(np.round(x.mean(dim=(1, 2, 3)).numpy() * 255).astype(int)) <= {60, 180}   # files 2 and 6
    with pytest.raises(ValueError):
        S.oe_images(2, source=tmp_path / "missing")


# --- defect textures ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", S.DEFECT_TYPES)
def test_defect_changes_exactly_its_mask(kind):
    rng = np.random.default_rng(0)
    img = S.texture_image("weave", rng, 64)
    out, mask = S.add_defect(img, kind, rng)
    assert mask.dtype == bool and 0 < mask.mean() < 0.3
    assert np.array_equal(out[~mask], img[~mask])
    assert np.abs(out[mask] - img[mask]).max(axis=-1).mean() > 0.1


def test_make_defect_textures_layout_and_seed(tmp_path):
    kw = dict(classes=["stripes"], n_train=4, n_test=7, size=24, seed=1, progress=False)
    root = S.make_defect_textures(tmp_path / "a", **kw)
    c = root / "stripes"
    assert len(list((c / "train" / "good").glob("*.png"))) == 4
    tests = sorted(c.glob("test/*/*.png"))
    assert len(tests) == 7 and len(list(c.glob("test/good/*.png"))) == 2
    for p in tests:
        if p.parent.name != "good":
            m = np.asarray(Image.open(c / "ground_truth" / p.parent.name / f"{p.stem}_mask.png"))
            assert m.shape == (24, 24) and set(np.unique(m)) <= {0, 255} and m.max() == 255
    S.make_defect_textures(tmp_path / "b", **kw)
    for p in sorted(c.rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(root)).read_bytes()
    with pytest.raises(ValueError):
        S.make_defect_textures(tmp_path, classes=["plaid"])


def test_ensure_textures_regenerates_incomplete(tmp_path, monkeypatch):
    monkeypatch.setitem(calad.data.textures.DEFAULTS, "n_train", 5)
    monkeypatch.setitem(calad.data.textures.DEFAULTS, "size", 16)
    S.make_defect_textures(tmp_path, classes=["clouds"], n_train=4, n_test=6, size=16, progress=False)
    victim = sorted((tmp_path / "clouds" / "test").glob("*/*.png"))[-1]
    victim.unlink()
    S.ensure_textures(tmp_path, ["clouds"], progress=False)       # incomplete → rebuilt as recorded
    assert victim.exists()
    assert len(list((tmp_path / "clouds" / "test").glob("*/*.png"))) == 6
    (tmp_path / "clouds" / "manifest.json").write_text("{broken")
    S.ensure_textures(tmp_path, ["clouds"], progress=False)       # unreadable manifest → defaults
    assert len(list((tmp_path / "clouds" / "train" / "good").glob("*.png"))) == calad.data.textures.DEFAULTS["n_train"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_images_on_the_gpu():
    cpu = S.spectral(6, channels=3, size=20, seed=7, device="cpu")
    gpu = S.spectral(6, channels=3, size=20, seed=7, device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)
    torch.testing.assert_close(S.oe_images(5, 3, 16, seed=1, device="cuda").cpu(),
                               S.oe_images(5, 3, 16, seed=1, device="cpu"), atol=1e-4, rtol=0)
