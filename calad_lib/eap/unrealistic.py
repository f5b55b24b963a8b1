"""Unrealistic auxiliary anomalies (EAP paper, §5.1): examples of other datasets brought to the target's dimension.

Two constructions, both drawing from up to ``n_sources`` other datasets of the offline pool
(:data:`POOL`: scikit-learn's bundled breast_cancer, wine, iris, digits, diabetes; never the
target's own family):

* ``"benchmark"``, as the authors' code builds them (``Lorenzo-Perini/ExpectedAnomalyPosterior``,
  ``opendataval/dataloader/fetcher_tabular.py``): each source is subsampled to at most
  ``max_size/8`` anomalies and ``max_size/4`` examples in all (``max_size = 1000``), kept in its
  raw units and mapped to the target's dimension ``d`` by :func:`to_dimension` (PCA, feature
  agglomeration, Gaussian random projection); a sample stratified by source and class is drawn
  from the pooled sources, and the caller rescales it with the *target's* training mean and
  standard deviation like every other example, so how far out it falls depends on the sources'
  units. The authors draw the sources from all their datasets, the target's own file included;
  here the target's family is left out.
* ``"stretch"`` (calad's choice): each source is z-scored, mapped to ``d`` dimensions by a Gaussian
  random projection that keeps unit variance per coordinate, and multiplied by ``scale``, so that
  the points fall mostly outside the standardised data.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import FeatureAgglomeration
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.random_projection import GaussianRandomProjection

__all__ = ["POOL", "CONSTRUCTIONS", "source_pool", "to_dimension", "subsample_source", "benchmark", "stretched"]

#: the offline datasets that may supply unrealistic anomalies (digits with digit 0 anomalous)
POOL = ("breast_cancer", "wine", "iris", "diabetes", "digits:0")
CONSTRUCTIONS = ("benchmark", "stretch")


def source_pool(name: str) -> list[str]:
    """Datasets that may supply unrealistic anomalies for ``name`` (never its own family)."""
    own = str(name).partition(":")[0]
    return [s for s in POOL if s.partition(":")[0] != own]


def to_dimension(X: np.ndarray, d: int, random_state: int = 0) -> np.ndarray:
    """``X`` (raw) with ``d`` columns, by the authors' rule; ``q = min(X.shape)``.

    ``d`` columns already: unchanged. ``q > d``: the first ``d`` principal components. ``3q ≥ d``:
    the first ``d`` columns of ``[X, PCA_q(X), FA_q(X)]``. Otherwise: the first ``d`` columns of
    ``[PCA_q(X), FA_q(X), GRP_{d − 2q}(X)]`` (FA: feature agglomeration into q clusters; GRP:
    Gaussian random projection).
    """
    X = np.asarray(X, dtype=float)
    q = min(X.shape)
    if X.shape[1] == d:
        return X.copy()
    if q > d:
        return PCA(n_components=d, random_state=random_state).fit_transform(X)
    blocks = [PCA(n_components=q, random_state=random_state).fit_transform(X),
              FeatureAgglomeration(n_clusters=q).fit_transform(X)]
    if 3 * q >= d:
        blocks = [X] + blocks
    else:
        with warnings.catch_warnings():   # more components than features is the point here
            warnings.simplefilter("ignore")
            blocks.append(GaussianRandomProjection(n_components=d - 2 * q, random_state=random_state).fit_transform(X))
    return np.hstack(blocks)[:, :d]


def subsample_source(y: np.ndarray, rng: np.random.Generator, max_size: int = 1000) -> np.ndarray:
    """Indices kept of one source: at most ``max_size // 8`` anomalies and, when there are more than
    ``max_size // 8`` normals, ``max_size // 4`` examples in all (the authors' rule)."""
    y = np.asarray(y)
    anom, norm = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    eighth = max_size // 8
    if len(anom) > eighth:
        anom = rng.choice(anom, eighth, replace=False)
    if len(norm) > eighth:
        norm = rng.choice(norm, min(len(norm), max_size // 4 - len(anom)), replace=False)
    return np.concatenate([norm, anom])


def benchmark(sources, load, d: int, count: int, rng: np.random.Generator, random_state: int = 0) -> np.ndarray:
    """``count`` unrealistic anomalies in raw source units, ``d`` columns (the ``"benchmark"`` construction).

    ``load(name) -> (X, y)`` gives a source's raw features and anomaly labels.
    """
    blocks, strata = [], []
    for j, src in enumerate(sources):
        Xs, ys = load(src)
        keep = subsample_source(ys, rng)
        blocks.append(to_dimension(Xs[keep], d, random_state))
        strata.append(np.asarray(ys)[keep] + 2 * j)          # one stratum per source and class
    X, s = np.vstack(blocks), np.concatenate(strata)
    if count >= len(X):
        return X[rng.permutation(len(X))[:count]]
    if count < len(np.unique(s)) or np.bincount(s).min() < 2:
        return X[rng.choice(len(X), count, replace=False)]
    _, picked = train_test_split(X, test_size=count, stratify=s, random_state=random_state)
    return picked


def stretched(sources, load, d: int, count: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """``count`` unrealistic anomalies in target z-units (the ``"stretch"`` construction), cycling over the sources."""
    counts = np.bincount(np.arange(count) % len(sources), minlength=len(sources))
    out = []
    for src, cnt in zip(sources, counts):
        if cnt == 0:
            continue
        Xs, _ = load(src)
        Xs = (Xs - Xs.mean(0)) / np.where(Xs.std(0) > 1e-12, Xs.std(0), 1.0)
        R = rng.normal(0.0, 1.0 / np.sqrt(Xs.shape[1]), size=(Xs.shape[1], d))
        pick = rng.choice(len(Xs), size=cnt, replace=cnt > len(Xs))
        out.append(scale * Xs[pick] @ R)
    return np.vstack(out)
