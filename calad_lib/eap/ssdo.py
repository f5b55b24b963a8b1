"""SSDO, semi-supervised detection of outliers (Vercruyssen et al., ICDM 2018), with an Isolation Forest prior.

The EAP paper (Perini et al., §5.1) uses SSDO with ``k = 10`` and an Isolation Forest
prior as the detector ``f`` behind every quality score. SSDO scores an example in
two steps:

1. an **unsupervised prior** ``p(x)`` in ``[0, 1]``: the Isolation Forest anomaly score,
   min-max scaled on the training data, then either (``prior="squashed"``, calad) squashed as
   ``1 - 2^{-(s/γ)^2}`` with ``γ`` the training score at the ``1 - c`` quantile (``c`` the
   contamination), or (``prior="minmax"``) used as it is, clipped to ``[0, 1]``: what the authors'
   code feeds anomatools' SSDO (``Lorenzo-Perini/ExpectedAnomalyPosterior``, ``Notebook.ipynb``:
   pyod's ``IForest`` as base detector, whose ``predict_proba`` is this min-max scaling);
2. **label propagation**: each labelled example ``x_l`` pulls the score of ``x`` towards its
   label with weight ``w(x, x_l) = 2^{-(d(x, x_l)/η)^2}``, where ``η`` is the harmonic mean
   of the training examples' distances to their ``k``-th nearest neighbour (so ``k`` sets
   how far a label reaches):

   .. math:: f(x) = \\frac{p(x) + α \\sum_{l: y_l = 1} w(x, x_l)}{1 + α \\sum_{l} w(x, x_l)}.

``f(x)`` lies in ``[0, 1]``; ``α`` (2.3 in the SSDO paper) weighs the labels against the prior.
SSDO's original prior is a constrained k-means clustering score; the EAP paper replaces it
by an Isolation Forest, as here.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import hmean
from sklearn.ensemble import IsolationForest
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

__all__ = ["SSDO", "squash", "PRIORS"]

PRIORS = ("squashed", "minmax")


def squash(x: np.ndarray, scale: float) -> np.ndarray:
    """The squashing function ``1 - 2^{-(x/scale)^2}`` of SSDO (and of EAP's eq. 4)."""
    return 1.0 - np.exp2(-np.square(np.asarray(x, dtype=float) / scale))


def _check_X(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features); got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values; impute or drop them first")
    return X


class SSDO:
    """Semi-supervised anomaly detector with label propagation (Vercruyssen et al. 2018).

    Parameters
    ----------
    k : int
        Neighbourhood size setting the propagation scale ``η`` (10 in the EAP paper).
    alpha : float
        Weight of the labels against the unsupervised prior (2.3 as in SSDO).
    contamination : float or None
        Fraction ``c`` used to squash the prior; ``None`` takes the labelled anomaly
        fraction of the training data (or 0.1 without labels).
    n_estimators : int
        Trees of the Isolation Forest prior.
    random_state : int
        Seed of the Isolation Forest.
    prior : {"squashed", "minmax"}
        How the forest's score becomes the prior (module docstring).
    """

    def __init__(self, k: int = 10, alpha: float = 2.3, contamination: float | None = None,
                 n_estimators: int = 100, random_state: int = 0, prior: str = "squashed"):
        if prior not in PRIORS:
            raise ValueError(f"unknown SSDO prior {prior!r}; choose one of {', '.join(PRIORS)}")
        if int(k) < 1:
            raise ValueError(f"SSDO k must be >= 1; got {k}")
        if not alpha >= 0:
            raise ValueError(f"SSDO alpha must be >= 0; got {alpha}")
        if contamination is not None and not 0 < contamination < 1:
            raise ValueError(f"SSDO contamination must lie in (0, 1) or be None; got {contamination}")
        self.k = int(k)
        self.alpha = float(alpha)
        self.contamination = contamination
        self.n_estimators = int(n_estimators)
        self.random_state = random_state
        self.prior_kind = prior

    # -- fitting ---------------------------------------------------------------------
    def fit(self, X, y=None, labelled=None) -> "SSDO":
        """Fit on ``X`` with labels ``y`` (0 normal, 1 anomaly); ``labelled`` masks which labels are known.

        Without ``y`` the detector is unsupervised (the prior alone). With ``y`` and no
        mask, every label is used.
        """
        X = _check_X(X)
        n = X.shape[0]
        if n <= self.k:
            raise ValueError(f"SSDO needs more than k={self.k} training examples; got {n}")
        if y is None:
            y = np.zeros(n)
            labelled = np.zeros(n, dtype=bool)
        y = np.asarray(y).astype(float).ravel()
        if y.shape[0] != n or not np.isin(y, (0, 1)).all():
            raise ValueError("SSDO labels y must be 0 (normal) or 1 (anomaly), one per row of X")
        labelled = np.ones(n, dtype=bool) if labelled is None else np.asarray(labelled, dtype=bool).ravel()
        self.X_ = X
        self.y_ = y
        self.labelled_ = labelled
        c = self.contamination
        if c is None:
            c = float(y[labelled].sum() / n) if labelled.any() and y[labelled].any() else 0.1
        self.contamination_ = min(max(c, 1.0 / n), 0.5)
        # 1. unsupervised prior
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state).fit(X)
        raw = -self.forest_.score_samples(X)
        self.prior_min_, self.prior_max_ = float(raw.min()), float(max(raw.max(), raw.min() + 1e-12))
        scaled = (raw - self.prior_min_) / (self.prior_max_ - self.prior_min_)
        self.gamma_ = float(np.quantile(scaled, 1.0 - self.contamination_)) + 1e-8
        # 2. propagation scale: harmonic mean of k-distances (self excluded)
        dist, _ = NearestNeighbors(n_neighbors=self.k + 1).fit(X).kneighbors(X)
        kd = dist[:, -1]
        kd = np.where(kd > 0, kd, kd[kd > 0].min() if (kd > 0).any() else 1.0)
        self.eta_ = max(float(hmean(kd)), 1e-12)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "eta_"):
            raise RuntimeError("SSDO is not fitted; call fit(X, y) first")

    # -- the two ingredients -----------------------------------------------------------
    def prior(self, X) -> np.ndarray:
        """The Isolation Forest prior ``p(x)`` in ``[0, 1]``: squashed, or min-max scaled and clipped."""
        self._check_fitted()
        raw = -self.forest_.score_samples(_check_X(X))
        scaled = np.clip((raw - self.prior_min_) / (self.prior_max_ - self.prior_min_), 0.0, None)
        if self.prior_kind == "minmax":
            return np.minimum(scaled, 1.0)
        return squash(scaled, self.gamma_)

    def weights(self, X, X_ref) -> np.ndarray:
        """Propagation weights ``w(x, x_ref) = 2^{-(d/η)^2}``, shape ``(len(X), len(X_ref))``."""
        self._check_fitted()
        d = pairwise_distances(_check_X(X), _check_X(X_ref, "X_ref"))
        return np.exp2(-np.square(d / self.eta_))

    @staticmethod
    def combine(prior: np.ndarray, w_anomalies: np.ndarray, w_normals: np.ndarray, alpha: float) -> np.ndarray:
        """SSDO's posterior from the prior and the summed weights to labelled anomalies and normals."""
        return (prior + alpha * w_anomalies) / (1.0 + alpha * (w_anomalies + w_normals))

    # -- scoring -----------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Anomaly scores ``f(x)`` in ``[0, 1]`` (larger = more anomalous)."""
        self._check_fitted()
        X = _check_X(X)
        prior = self.prior(X)
        lab = self.labelled_
        if not lab.any():
            return prior
        W = self.weights(X, self.X_[lab])
        ya = self.y_[lab] == 1
        return self.combine(prior, W[:, ya].sum(1), W[:, ~ya].sum(1), self.alpha)

    score = decision_function

    def fit_score(self, X, y=None) -> np.ndarray:
        """Fit and return the scores of the training data."""
        return self.fit(X, y).decision_function(X)
