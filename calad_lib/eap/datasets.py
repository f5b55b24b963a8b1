"""Offline anomaly datasets and the auxiliary-anomaly protocol of the EAP paper (§5.1).

Datasets (all offline):

====================  =====================================================================
name                  construction
====================  =====================================================================
``breast_cancer``     scikit-learn's Wisconsin breast cancer: malignant tumours are anomalies
``wine``              scikit-learn's wine: cultivar 3 (the smallest class) is anomalous
``iris``              scikit-learn's iris: *virginica* is anomalous (it overlaps *versicolor*)
``diabetes``          scikit-learn's diabetes: the 10 % of patients with the largest disease
                      progression after one year are anomalies
``digits:<c>``        scikit-learn's 8×8 digits: digit ``c`` is anomalous, the others normal
``fmnist:<c>``        Fashion-MNIST (training split): class ``c`` is normal, anomalies are drawn
                      from the other nine classes; images enter as frozen features (below)
====================  =====================================================================

Fashion-MNIST images enter through a frozen feature map fitted on the *test* split only,
so no experiment image (all drawn from the training split) is used to fit it; the paper
uses a pre-trained ViT, which cannot be downloaded here. Two maps are available:

* ``"svdd"``: the 32-dimensional output of the LeNet of the base-losses chapter
  (:mod:`calad_lib.train`), trained with the SVDD loss (thesis §4.1) on the test-split
  images of the normal class ``c`` (model cached);
* ``"pca"``: a 32-component PCA of the pixels of the whole test split (label-free).

Protocol, per dataset and seed: (i) a balanced test set of 50 % of the anomalies and as
many normals; (ii) ``l`` auxiliary anomalies, a third each **realistic** (40 % of the
anomalies), **indistinguishable** (normals labelled anomalous) and **unrealistic**
(examples of up to five other datasets, :mod:`.unrealistic`); (iii) a training set of the
remaining 10 % of anomalies and the remaining normals. Features are z-scored with the training
set's statistics. Three choices follow either the authors' code
(``Lorenzo-Perini/ExpectedAnomalyPosterior``, ``fetcher_tabular.py``) or calad's: the
construction of the unrealistic anomalies (``"benchmark"`` / ``"stretch"``), which anomalies train
(``"kmeans"``: the first in KMeans cluster order, a biased set as the paper's §3.2 warns;
``"random"``), and the counts (``"capped"`` / ``"proportional"``, :func:`split_counts`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn import datasets as skd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from . import unrealistic as U
from .. import data
from .. import train as T
from ..data import FASHION_MNIST_CLASSES

__all__ = ["TABULAR", "IMAGE", "FEATURES", "describe", "load_dataset", "AuxiliarySplit", "make_split", "kind_of",
           "fashion_mnist_features", "KINDS", "SPLITS", "SELECTIONS", "split_counts", "kmeans_first"]

KINDS = ("realistic", "indistinguishable", "unrealistic")
SPLITS = ("proportional", "capped")
SELECTIONS = ("random", "kmeans")

TABULAR = {
    "breast_cancer": "Wisconsin breast cancer (sklearn); malignant = anomaly",
    "wine": "wine (sklearn); cultivar 3 = anomaly, cultivars 1-2 normal",
    "iris": "iris (sklearn); virginica = anomaly, setosa and versicolor normal",
    "diabetes": "diabetes (sklearn); top 10 % disease progression = anomaly",
    "digits:<c>": "8x8 digits (sklearn); digit c = anomaly, other digits normal",
}
IMAGE = {"fmnist:<c>": "Fashion-MNIST train split, frozen 32-d features; class c normal, other classes anomalous"}


def _parse(name: str) -> tuple[str, int | None]:
    base, _, arg = str(name).partition(":")
    if base in ("breast_cancer", "wine", "iris", "diabetes") and not arg:
        return base, None
    if base in ("digits", "fmnist") and arg.isdigit() and 0 <= int(arg) <= 9:
        return base, int(arg)
    raise ValueError(f"unknown dataset {name!r}; choose breast_cancer, wine, iris, diabetes, digits:<0-9> or fmnist:<0-9>")


def kind_of(name: str) -> str:
    """``"image"`` for Fashion-MNIST features, ``"tabular"`` otherwise."""
    return "image" if _parse(name)[0] == "fmnist" else "tabular"


def describe(name: str) -> str:
    base, arg = _parse(name)
    if base == "digits":
        return f"8x8 digits (sklearn); digit {arg} = anomaly, other digits normal"
    if base == "fmnist":
        return f"Fashion-MNIST, frozen 32-d features; '{FASHION_MNIST_CLASSES[arg]}' normal, other classes anomalous"
    return TABULAR[base]


FEATURES = ("svdd", "pca")


@functools.lru_cache(maxsize=2)
def _fmnist(train: bool):
    ds = data.load("fashion_mnist", train=train)
    return ds.images, ds.labels.numpy().astype(int)


@functools.lru_cache(maxsize=2)
def _pca(n_components: int = 32):
    images, _ = _fmnist(False)
    return PCA(n_components=n_components, random_state=0).fit(images.reshape(len(images), -1).numpy())


@functools.lru_cache(maxsize=16)
def _svdd(normal_class: int, epochs: int, seed: int = 0):
    images, labels = _fmnist(False)
    cfg = T.TrainConfig(loss="svdd", dataset="fashion_mnist", normal_class=int(normal_class), seed=seed,
                        epochs=int(epochs), milestones=(max(1, (3 * int(epochs)) // 4),), split="full")
    return T.train(cfg, images[torch.as_tensor(np.flatnonzero(labels == normal_class))], progress=False)


def fashion_mnist_features(indices, normal_class: int, features: str = "svdd", epochs: int = 20) -> np.ndarray:
    """Frozen features of the Fashion-MNIST training images ``indices`` (see the module docstring)."""
    if features not in FEATURES:
        raise ValueError(f"unknown feature map {features!r}; choose one of {', '.join(FEATURES)}")
    images, _ = _fmnist(True)
    x = images[torch.as_tensor(np.asarray(indices, dtype=np.int64))]
    if features == "pca":
        return _pca().transform(x.reshape(len(x), -1).numpy()).astype(np.float64)
    model = _svdd(int(normal_class), int(epochs))
    with torch.no_grad():
        out = [model.head_features(x[i:i + 1000].to(model.device)).cpu() for i in range(0, len(x), 1000)]
    return torch.cat(out).numpy().astype(np.float64)


@functools.lru_cache(maxsize=16)
def _tabular(base: str, arg: int | None) -> tuple[np.ndarray, np.ndarray]:
    if base == "breast_cancer":
        b = skd.load_breast_cancer()
        return b.data, (b.target == 0).astype(int)  # sklearn: 0 = malignant
    if base == "wine":
        b = skd.load_wine()
        return b.data, (b.target == 2).astype(int)
    if base == "iris":
        b = skd.load_iris()
        return b.data, (b.target == 2).astype(int)
    if base == "diabetes":
        b = skd.load_diabetes()
        return b.data, (b.target >= np.quantile(b.target, 0.9)).astype(int)
    b = skd.load_digits()
    return b.data, (b.target == arg).astype(int)


def load_dataset(name: str, *, max_normals: int | None = None, max_anomalies: int | None = None,
                 seed: int = 0, features: str = "svdd", feature_epochs: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X`` (raw) and labels ``y`` (1 = anomaly) of ``name``, subsampled to the caps with ``seed``.

    ``features``/``feature_epochs`` choose the frozen map of Fashion-MNIST images.
    """
    base, arg = _parse(name)
    if features not in FEATURES:
        raise ValueError(f"unknown feature map {features!r}; choose one of {', '.join(FEATURES)}")
    rng = np.random.default_rng([seed, 101])
    if base == "fmnist":
        _, labels = _fmnist(True)
        norm = np.flatnonzero(labels == arg)
        anom = np.flatnonzero(labels != arg)
        norm = rng.choice(norm, size=min(len(norm), max_normals or 1000), replace=False)
        anom = rng.choice(anom, size=min(len(anom), max_anomalies or 200), replace=False)
        idx = np.concatenate([norm, anom])
        return fashion_mnist_features(idx, arg, features, feature_epochs), (labels[idx] != arg).astype(int)
    X, y = _tabular(base, arg)
    norm, anom = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    if max_normals is not None and len(norm) > max_normals:
        norm = rng.choice(norm, size=max_normals, replace=False)
    if max_anomalies is not None and len(anom) > max_anomalies:
        anom = rng.choice(anom, size=max_anomalies, replace=False)
    idx = np.sort(np.concatenate([norm, anom]))
    return np.asarray(X[idx], dtype=float), y[idx]


@dataclass
class AuxiliarySplit:
    """One run of the protocol: training set, auxiliary anomalies (with their kind) and test set."""

    name: str
    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_aux: np.ndarray
    aux_kind: np.ndarray   # 0 realistic, 1 indistinguishable, 2 unrealistic
    X_test: np.ndarray
    y_test: np.ndarray
    sources: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    @property
    def good(self) -> np.ndarray:
        """Pseudo-quality labels: 1 for realistic auxiliary anomalies, 0 for the others."""
        return (self.aux_kind == 0).astype(int)

    def summary(self) -> dict:
        return {"dataset": self.name, "seed": self.seed, "d": self.X_train.shape[1], "n": len(self.y_train),
                "m": int(self.y_train.sum()), "l": len(self.aux_kind), "n_test": len(self.y_test)}


def split_counts(A: int, split: str = "proportional") -> tuple[int, int, int]:
    """Test anomalies, auxiliary anomalies of each kind (l/3) and training anomalies for ``A`` anomalies.

    ``"proportional"`` (calad): 50 %, 40 % and the remaining ~10 %. ``"capped"`` (the authors'
    ``split_dataset_by_prop``): 10 % of training anomalies clipped to [5, 50], 50 % of test
    anomalies capped at 250, and 40 % capped at 250 and at what is left. The authors' floor of 50
    test anomalies, which binds only below 100 anomalies (and leaves no auxiliary set below 56),
    is not applied.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "proportional":
        n_test, third = int(round(0.5 * A)), int(round(0.4 * A))
        return n_test, third, A - n_test - third
    n_train = int(min(max(round(0.1 * A), 5), 50))
    n_test = int(min(round(0.5 * A), 250))
    return n_test, int(min(round(0.4 * A), 250, A - n_test - n_train)), n_train


def kmeans_first(X: np.ndarray, candidates: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The first ``count`` of ``candidates`` (rows of ``X``) in the order of their KMeans cluster (authors' rule).

    KMeans with ``min(10, len(candidates))`` clusters on the raw features; a stable sort by
    cluster label keeps the candidates' order within a cluster.
    """
    candidates = np.asarray(candidates, dtype=int)
    labels = KMeans(n_clusters=min(10, len(candidates)), random_state=seed, n_init="auto").fit(X[candidates]).labels_
    return candidates[np.argsort(labels, kind="stable")[:count]]


def make_split(name: str, seed: int, *, max_normals: int | None = None, max_anomalies: int | None = None,
               n_sources: int = 5, unrealistic: str = "stretch", unrealistic_scale: float = 3.0,
               train_anomalies: str = "random", split: str = "proportional", features: str = "svdd",
               feature_epochs: int = 20) -> AuxiliarySplit:
    """The §5.1 protocol for dataset ``name`` and ``seed`` (see the module docstring).

    ``unrealistic``: ``"stretch"`` or ``"benchmark"`` (:mod:`.unrealistic`); ``train_anomalies``:
    ``"random"`` or ``"kmeans"`` (:func:`kmeans_first` on the anomalies left after the test set);
    ``split``: ``"proportional"`` or ``"capped"`` (:func:`split_counts`; capped also keeps at most
    1000 training normals and standardises with the unbiased standard deviation, floored at 10⁻³,
    as the authors' code does).
    """
    if n_sources < 1:
        raise ValueError(f"n_sources must be >= 1; got {n_sources}")
    if not unrealistic_scale > 0:
        raise ValueError(f"unrealistic_scale must be > 0; got {unrealistic_scale}")
    if unrealistic not in U.CONSTRUCTIONS:
        raise ValueError(f"unknown unrealistic construction {unrealistic!r}; choose one of {', '.join(U.CONSTRUCTIONS)}")
    if train_anomalies not in SELECTIONS:
        raise ValueError(f"unknown train_anomalies {train_anomalies!r}; choose one of {', '.join(SELECTIONS)}")
    X, y = load_dataset(name, max_normals=max_normals, max_anomalies=max_anomalies, seed=seed, features=features,
                        feature_epochs=feature_epochs)
    rng = np.random.default_rng([seed, 202])
    anom, norm = rng.permutation(np.flatnonzero(y == 1)), rng.permutation(np.flatnonzero(y == 0))
    A = len(anom)
    n_test, third, n_train_anom = split_counts(A, split)
    if n_train_anom < 2 or third < 1:
        raise ValueError(f"dataset {name} has too few anomalies ({A}) for the protocol; raise max_anomalies")
    if len(norm) < n_test + third + 10:
        raise ValueError(f"dataset {name} has too few normals ({len(norm)}) for the protocol; raise max_normals")
    test_idx = np.concatenate([anom[:n_test], norm[:n_test]])
    indist_idx = norm[n_test:n_test + third]
    train_norm = norm[n_test + third:][:1000] if split == "capped" else norm[n_test + third:]
    rest = anom[n_test:]
    if train_anomalies == "random":
        real_idx, train_anom = rest[:third], rest[third:third + n_train_anom]
    else:
        train_anom = kmeans_first(X, np.sort(rest), n_train_anom, seed)
        real_idx = rest[~np.isin(rest, train_anom)][:third]
    train_idx = np.concatenate([train_anom, train_norm])
    mu = X[train_idx].mean(0)
    if split == "capped":
        sd = X[train_idx].std(0, ddof=1)
        sd = np.where(sd >= 1e-3, sd, 1.0)
    else:
        sd = X[train_idx].std(0)
        sd = np.where(sd > 1e-12, sd, 1.0)
    z = lambda a: (a - mu) / sd  # noqa: E731
    pool = U.source_pool(name)
    sources = tuple(rng.choice(pool, size=min(n_sources, len(pool)), replace=False))
    load = lambda src: load_dataset(src)  # noqa: E731  (raw features, no caps)
    if unrealistic == "stretch":
        unreal = U.stretched(sources, load, X.shape[1], third, rng, unrealistic_scale)
    else:
        unreal = z(U.benchmark(sources, load, X.shape[1], third, rng, random_state=seed))
    X_aux = np.vstack([z(X[real_idx]), z(X[indist_idx]), unreal])
    kinds = np.repeat([0, 1, 2], [third, third, third])
    perm = rng.permutation(len(kinds))  # no method may exploit the order
    test_perm = rng.permutation(len(test_idx))
    return AuxiliarySplit(name, seed, z(X[train_idx]), y[train_idx], X_aux[perm], kinds[perm],
                          z(X[test_idx])[test_perm], y[test_idx][test_perm], sources,
                          {"anomalies": A, "normals": len(norm), "mean": mu, "std": sd,
                           "train_anomalies": X[train_anom]})
