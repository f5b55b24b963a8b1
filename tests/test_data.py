"""Loaders, protocols and preprocessing of calad_lib.data on fixture datasets (thesis §4.2.1–§4.2.2)."""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import calad_lib as calad  # noqa: E402
from calad_lib.data import DataError, DataNotFound  # noqa: E402
from fixtures_data import make_cifar, make_fashion_mnist, make_mvtec_class  # noqa: E402

DEBIAN = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# --- idx ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_roundtrip(tmp_path, name, dtype):
    a = (np.arange(2 * 3 * 5) % 251).astype(dtype).reshape(2, 3, 5)
    calad.data.write_idx(tmp_path / name, a)
    b = calad.data.read_idx(tmp_path / name)
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


def test_idx_header_is_the_mnist_format(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = calad.data.write_idx(tmp_path / "x.gz", a)
    raw = gzip.open(path).read()
    assert raw[:4] == bytes([0, 0, 8, 2]) and raw[4:12] == (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    assert raw[12:] == a.tobytes()


def test_idx_truncated_file_raises_one_line(tmp_path):
    path = calad.data.write_idx(tmp_path / "x", np.zeros((4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError) as e:
        calad.data.read_idx(path)
    assert "truncated" in one_line(e)


# --- Fashion-MNIST --------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_fixture(tmp_path, gz):
    raw = make_fashion_mnist(tmp_path, gz=gz)
    for train, key in ((True, "train"), (False, "t10k")):
        ds = calad.data.load("fashion_mnist", train=train, root=tmp_path)
        x, y = raw[key]
        assert ds.images.dtype == torch.float32 and ds.images.shape == (len(x), 1, 28, 28)
        assert ds.labels.dtype == torch.int64
        assert torch.equal(ds.images, torch.from_numpy(x).float().unsqueeze(1) / 255)
        assert np.array_equal(ds.labels.numpy(), y)
        assert ds.classes == calad.data.FASHION_MNIST_CLASSES and len(ds) == len(x)
    assert calad.data.load("fashion_mnist", root=tmp_path) is calad.data.load("fashion_mnist", root=tmp_path)


def test_fashion_mnist_resize(tmp_path):
    make_fashion_mnist(tmp_path)
    ds = calad.data.load("fashion_mnist", root=tmp_path, size=32)
    assert ds.images.shape[-2:] == (32, 32) and 0 <= ds.images.min() and ds.images.max() <= 1


def test_fashion_mnist_missing_names_the_fix(tmp_path):
    with pytest.raises(DataNotFound) as e:
        calad.data.load("fashion_mnist", root=tmp_path / "nowhere", download=False)
    msg = one_line(e)
    assert "dataset-fashion-mnist" in msg and "train-images-idx3-ubyte.gz" in msg


@pytest.mark.skipif(not DEBIAN.exists(), reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    tr = calad.data.load("fashion_mnist", train=True)
    te = calad.data.load("fashion_mnist", train=False)
    assert tr.images.shape == (60000, 1, 28, 28) and te.images.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(tr.labels), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(te.labels), torch.full((10,), 1000))
    assert tr.images.min() == 0 and tr.images.max() == 1


def test_unknown_name_lists_names():
    with pytest.raises(DataError) as e:
        calad.data.load("imagenet")
    msg = one_line(e)
    for n in ("fashion_mnist", "cifar10", "cifar100", "mvtec:<class>", "mpdd:<class>", "textures:<class>"):
        assert n in msg
    with pytest.raises(DataError):
        calad.data.load("mvtec")          # needs a class
    with pytest.raises(DataError):
        calad.data.load("cifar10:cat")    # takes none


# --- CIFAR ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_fixture(tmp_path, kind):
    raw = make_cifar(tmp_path, kind)
    for train in (True, False):
        ds = calad.data.load(kind, train=train, root=tmp_path)
        x, y = raw["train" if train else "test"]
        assert ds.images.shape == (len(x), 3, 32, 32) and ds.images.dtype == torch.float32
        # CIFAR rows are channel-major: 1024 red, 1024 green, 1024 blue values, each row-major 32×32
        i = len(x) - 1
        assert ds.images[i, 1, 2, 3] == pytest.approx(x[i, 1024 + 2 * 32 + 3] / 255)
        assert np.array_equal(ds.labels.numpy(), y)
        assert ds.classes == raw["classes"]


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_class_names_stored_as_bytes_are_decoded(tmp_path, kind):
    raw = make_cifar(tmp_path, kind, byte_names=True)
    ds = calad.data.load(kind, train=False, root=tmp_path)
    assert ds.classes == raw["classes"] and ds.classes[0] == "class0"


def test_cifar_missing_names_the_folder(tmp_path):
    with pytest.raises(DataNotFound) as e:
        calad.data.load("cifar100", root=tmp_path, download=False)
    assert "cifar-100-python" in one_line(e)


# --- protocols ------------------------------------------------------------------------------
def test_split_indices_partition():
    tr, ca = calad.data.split_indices(101, seed=3, calib_fraction=0.25)
    assert len(ca) == 25 and len(tr) == 76
    assert torch.equal(torch.sort(torch.cat([tr, ca])).values, torch.arange(101))
    assert torch.all(tr[1:] > tr[:-1]) and torch.all(ca[1:] > ca[:-1])
    tr2, ca2 = calad.data.split_indices(101, seed=3)
    assert torch.equal(ca, ca2)
    assert not torch.equal(ca, calad.data.split_indices(101, seed=4)[1])
    for bad in (0.0, 1.0, -0.1, True):
        with pytest.raises(DataError):
            calad.data.split_indices(10, calib_fraction=bad)


def test_one_vs_all(tmp_path):
    raw = make_fashion_mnist(tmp_path, n_train=80, n_test=30)
    s = calad.data.one_vs_all("fashion_mnist", normal_class=3, seed=1, root=tmp_path)
    x, y = raw["train"]
    normal = torch.from_numpy(x[y == 3]).float().unsqueeze(1) / 255
    assert torch.equal(s.full_train, normal)
    assert len(s.train) + len(s.calib) == len(normal) and len(s.calib) == round(len(normal) * 0.25)
    both = torch.cat([s.train, s.calib]).flatten(1)
    assert torch.unique(both, dim=0).shape[0] == len(normal)        # disjoint, nothing lost
    assert torch.equal(s.test_y, (torch.from_numpy(raw["t10k"][1]).long() != 3).long())
    assert torch.equal(s.test_labels, torch.from_numpy(raw["t10k"][1]).long())
    assert s.normal_class == 3 and s.classes[3] == "Dress"
    s2 = calad.data.one_vs_all("fashion_mnist", normal_class="Dress", seed=1, root=tmp_path)
    assert torch.equal(s2.calib, s.calib)
    with pytest.raises(DataError) as e:
        calad.data.one_vs_all("fashion_mnist", normal_class=10, root=tmp_path)
    one_line(e)


def _write_mvtec(root: Path, name="widget", **kw):
    return make_mvtec_class(root / "mvtec_ad" / name, **kw)


@pytest.mark.parametrize("grayscale", [False, True])
def test_mvtec_layout_and_masks(tmp_path, grayscale):
    rects = _write_mvtec(tmp_path, size=40, grayscale=grayscale)
    te = calad.data.load("mvtec:widget", train=False, root=tmp_path, size=40)
    assert te.classes == ("good", "crack", "hole")
    assert te.images.shape == (5, 3, 40, 40) and te.masks.shape == (5, 1, 40, 40)
    assert torch.equal(te.labels, torch.tensor([0, 0, 1, 1, 2]))
    assert set(te.masks.unique().tolist()) <= {0.0, 1.0} and te.masks[:2].sum() == 0
    # each mask is exactly where the image is white (the defect) at native size
    white = (te.images.min(dim=1, keepdim=True).values == 1).float()
    assert torch.equal(white[2:], te.masks[2:])
    y0, x0, h, w = rects[("crack", 0)]
    assert te.masks[2, 0].sum() == h * w and te.masks[2, 0, y0, x0] == 1


def test_mvtec_resize_keeps_masks_aligned(tmp_path):
    rects = _write_mvtec(tmp_path, size=64)
    te = calad.data.load("mvtec:widget", train=False, root=tmp_path, size=32)
    assert te.images.shape[-2:] == (32, 32) == te.masks.shape[-2:]
    for i, key in enumerate(sorted(rects, key=lambda k: (k[0], k[1])), start=2):
        y0, x0, h, w = rects[key]
        native = torch.zeros(1, 1, 64, 64)
        native[..., y0:y0 + h, x0:x0 + w] = 1
        frac = torch.nn.functional.avg_pool2d(native, 2)[0, 0]     # share of each 2×2 block under the defect
        m = te.masks[i, 0]
        assert torch.all(m[frac == 1] == 1) and torch.all(m[frac == 0] == 0)
        assert te.images[i].min(dim=0).values[frac == 1].mean() > 0.95   # the white defect lies under the mask


def test_per_class(tmp_path):
    _write_mvtec(tmp_path, size=32, n_train=12)
    s = calad.data.per_class("mvtec:widget", size=16, seed=0, root=tmp_path)
    assert s.name == "mvtec:widget"
    assert s.full_train.shape == (12, 3, 16, 16) and len(s.train) == 9 and len(s.calib) == 3
    assert s.test_x.shape == (5, 3, 16, 16) and s.test_masks.shape == (5, 1, 16, 16)
    assert torch.equal(s.test_y, torch.tensor([0, 0, 1, 1, 1]))
    assert s.defect_types == ("good", "good", "crack", "crack", "hole")
    c = calad.data.per_class("mvtec:widget", size=16, seed=0, root=tmp_path, crop=True)
    assert c.train.shape[-1] == calad.data.pre_crop_size(16) == 18 and c.test_x.shape[-1] == 16
    assert calad.data.pre_crop_size(256) == 292 and calad.data.pre_crop_size(224) == 256


def test_mvtec_missing_class_lists_found(tmp_path):
    _write_mvtec(tmp_path, name="bottle")
    with pytest.raises(DataNotFound) as e:
        calad.data.load("mvtec:cable", root=tmp_path)
    assert "bottle" in one_line(e)
    with pytest.raises(DataNotFound) as e:
        calad.data.load("mpdd:tubes", root=tmp_path)
    assert "train/good" in one_line(e)


def test_mvtec_missing_mask(tmp_path):
    _write_mvtec(tmp_path)
    (tmp_path / "mvtec_ad" / "widget" / "ground_truth" / "hole" / "000_mask.png").unlink()
    with pytest.raises(DataNotFound) as e:
        calad.data.load("mvtec:widget", train=False, root=tmp_path)
    assert "000_mask.png" in one_line(e)


def test_hflip_ok():
    assert not calad.data.hflip_ok("mvtec:metal_nut") and calad.data.hflip_ok("mvtec:bottle")
    assert calad.data.hflip_ok("fashion_mnist")


# --- textures through the loader -------------------------------------------------------------
def test_textures_through_loader(tmp_path):
    calad.synthesis.make_defect_textures(tmp_path / "textures", classes=["dots"], n_train=8, n_test=10, size=32,
                                         progress=False)
    s = calad.data.per_class("textures:dots", size=32, root=tmp_path, progress=False)
    assert s.full_train.shape == (8, 3, 32, 32) and s.test_x.shape == (10, 3, 32, 32)
    assert set(s.defect_types) == {"good", *calad.synthesis.DEFECT_TYPES}
    defective = s.test_y == 1
    assert torch.all(s.test_masks[defective].flatten(1).sum(1) > 0)
    assert s.test_masks[~defective].sum() == 0
    with pytest.raises(DataError):
        calad.data.load("textures:plaid", root=tmp_path)


# --- augmentation -----------------------------------------------------------------------------
def test_augment_shapes_range_determinism():
    x = torch.rand(16, 3, 12, 10)
    aug = calad.data.Augment(jitter=0.3, noise_std=0.05, hflip=True)
    a = aug(x, generator=torch.Generator().manual_seed(0))
    b = aug(x, generator=torch.Generator().manual_seed(0))
    c = aug(x, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(calad.data.Augment(0, 0, False)(x), x)
    for bad in ({"jitter": 1.0}, {"noise_std": -1}, {"crop": 0}):
        with pytest.raises(DataError):
            calad.data.Augment(**bad)


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_matches_torchvision(channels):
    import torchvision.transforms.v2.functional as TF

    x = torch.rand(6, channels, 9, 11)
    aug = calad.data.Augment(jitter=0.4, noise_std=0.02, hflip=True)
    p = aug.sample(x.shape, torch.Generator().manual_seed(5))
    out = aug.apply(x, p)
    for i in range(len(x)):
        b, c, s = p["factors"][i].tolist()
        ref = TF.adjust_contrast(TF.adjust_brightness(x[i], b), c)
        if channels == 3:
            ref = TF.adjust_saturation(ref, s)
        if p["flip"][i]:
            ref = TF.horizontal_flip(ref)
        ref = (ref + p["noise"][i]).clamp(0, 1)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_random_crop_matches_slicing():
    x = torch.rand(5, 3, 20, 18)
    aug = calad.data.Augment(jitter=0, noise_std=0, hflip=False, crop=8)
    p = aug.sample(x.shape, torch.Generator().manual_seed(2))
    out = aug.apply(x, p)
    for i, (t, l) in enumerate(p["offsets"].tolist()):
        assert 0 <= t <= 12 and 0 <= l <= 10
        assert torch.equal(out[i], x[i, :, t:t + 8, l:l + 8])


def test_grayscale_and_zscore():
    import torchvision.transforms.v2.functional as TF

    x = torch.rand(7, 3, 5, 6)
    torch.testing.assert_close(calad.data.grayscale(x), TF.rgb_to_grayscale(x), atol=1e-6, rtol=0)
    z = calad.data.ZScore().fit(x)
    a = x.permute(1, 0, 2, 3).reshape(3, -1).double().numpy()
    np.testing.assert_allclose(z.mean_.numpy(), a.mean(1), rtol=1e-6)
    np.testing.assert_allclose(z.std_.numpy(), a.std(1), rtol=1e-5)
    t = z.transform(x)
    np.testing.assert_allclose(t.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    torch.testing.assert_close(z.inverse_transform(t), x)
    y = torch.rand(2, 3, 5, 6)
    torch.testing.assert_close(z.transform(y), (y - z.mean_.view(3, 1, 1)) / z.std_.view(3, 1, 1))
    with pytest.raises(DataError):
        calad.data.ZScore().transform(x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_the_gpu():
    x = torch.rand(8, 3, 16, 16)
    aug = calad.data.Augment(jitter=0.2, noise_std=0.01, crop=12)
    a = aug(x.cuda(), generator=torch.Generator(device="cuda").manual_seed(0))
    b = aug(x.cuda(), generator=torch.Generator(device="cuda").manual_seed(0))
    assert a.device.type == "cuda" and a.shape == (8, 3, 12, 12) and torch.equal(a, b)
    c = aug(x.cuda(), generator=torch.Generator().manual_seed(0))          # CPU generator, CUDA data
    torch.testing.assert_close(c.cpu(), aug(x, generator=torch.Generator().manual_seed(0)), atol=1e-5, rtol=0)
