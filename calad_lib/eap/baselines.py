"""EAP and the twelve baselines of the EAP paper (§5.1) behind one interface.

Every method is an object with

    ``score_auxiliary(X_train, y_train, X_aux, *, detector=None, random_state=0) -> quality``

returning one quality score per auxiliary anomaly (higher = better). ``detector`` is an
SSDO already fitted on ``(X_train, y_train)``; the protocol fits it once per run and shares
it, and a method fits its own when it is ``None``. :data:`DESCRIPTIONS` says in one line
what each method measures; :func:`get_method` builds one by name, with the EAP options of a
protocol (:func:`calad_lib.eap.protocols.estimator_options`). EAP and its three ingredients come
from one fit (:func:`family_scores`); as in the authors' code (``px_estimator.py``,
``pygivenx_estimator.py``, ``pygivenxcombinedpx.py``) the ingredients use the whole training set
even when EAP averages over subsamples, and ``P_y|x + N·P_x`` multiplies by all ``n`` examples.
"""
from __future__ import annotations

import numpy as np

from . import valuation as V
from .posterior import EAP
from .rarity import Rarity
from .ssdo import SSDO

__all__ = ["METHODS", "FAMILY", "DESCRIPTIONS", "get_method", "QualityMethod", "family_scores"]

#: the paper's thirteen methods, in the order of its Table 1 (images)
METHODS = ("EAP", "Rarity", "LAVA", "P_y|x+NP_x", "LOO", "RandomEV", "DataOOB", "KNNShap", "AME", "INF",
           "P_y|x", "DataBanzhaf", "P_x")

#: EAP and the three scores made of its ingredients
FAMILY = ("EAP", "P_x", "P_y|x", "P_y|x+NP_x")

DESCRIPTIONS = {
    "EAP": "posterior mean of the anomaly probability: conditional probability weighted by density evidence",
    "Rarity": "smallest k-NN ball (k = 10) holding the candidate; 0 outside all balls",
    "LAVA": "how much up-weighting the candidate lowers the label-aware OT distance to the training set",
    "P_y|x+NP_x": "conditional probability plus n times the density (a naive sum of the two ingredients)",
    "LOO": "change of the detector's training AUROC when the candidate alone is added",
    "RandomEV": "uniform random scores (the chance level)",
    "DataOOB": "SSDO score of the candidate from bootstrap models that did not see it",
    "KNNShap": "exact Shapley value of the candidate for a 10-NN classifier validated on the training set",
    "AME": "Lasso estimate of the candidate's average marginal effect on the detector's AUROC",
    "INF": "mean AUROC of 70 % subsets with the candidate minus without (subsampled influence)",
    "P_y|x": "the detector's squashed conditional probability of being an anomaly (eq. 4)",
    "DataBanzhaf": "Banzhaf value of the candidate for the detector's AUROC (random half subsets)",
    "P_x": "the rarity-based density estimate of eq. 3",
}


def _detector(detector, X_train, y_train, random_state: int) -> SSDO:
    return detector if detector is not None else SSDO(k=10, random_state=random_state).fit(X_train, y_train)


class QualityMethod:
    """A named quality score; subclasses implement :meth:`score_auxiliary`."""

    name = "method"

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def family_scores(model: EAP, X_aux, prior: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """The four scores of :data:`FAMILY` from one fitted EAP model."""
    c = model.components(X_aux, prior=prior)
    return {"EAP": c.eap, "P_x": c.density, "P_y|x": c.conditional, "P_y|x+NP_x": c.conditional + model.n_ * c.density}


class _EAPFamily(QualityMethod):
    """EAP and its ingredients ``P_x``, ``P_y|x``, ``P_y|x + N·P_x`` (one EAP fit; only EAP averages subsamples)."""

    def __init__(self, name: str = "EAP", prior: tuple[float, float] | None = None, k: int | None = None,
                 options: dict | None = None):
        self.name, self.prior, self.k = name, prior, k
        self.options = dict(options or {})
        if name != "EAP":
            self.options["subsets"] = 0

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        det = _detector(detector, X_train, y_train, random_state)
        model = EAP(detector=det, prefit=True, prior=self.prior, k=self.k, random_state=random_state,
                    **self.options).fit(X_train, y_train)
        return family_scores(model, X_aux)[self.name]


class _RandomEV(QualityMethod):
    name = "RandomEV"

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        return np.random.default_rng([random_state, 7]).random(len(X_aux))


class _Rarity(QualityMethod):
    name = "Rarity"

    def __init__(self, k: int = 10, closed: bool = True):
        self.k, self.closed = k, closed

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        k = min(self.k, len(X_train) - 1)
        return Rarity(k=k, closed=self.closed).fit(X_train).score(X_aux)


class _Utility(QualityMethod):
    """Methods valuing the auxiliary set through the SSDO utility (LOO, DataBanzhaf, INF, AME)."""

    def __init__(self, name: str, n_models: int = 50):
        self.name, self.n_models = name, n_models

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        det = _detector(detector, X_train, y_train, random_state)
        u = V.SSDOUtility(det, X_train, y_train, X_aux)
        if self.name == "LOO":
            return V.loo(u)
        if self.name == "DataBanzhaf":
            return V.banzhaf(u, self.n_models, random_state)
        if self.name == "INF":
            return V.influence_subsample(u, self.n_models, 0.7, random_state)
        return V.ame(u, self.n_models, random_state)


class _KNNShap(QualityMethod):
    name = "KNNShap"

    def __init__(self, k: int = 10):
        self.k = k

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        X_train, X_aux = np.asarray(X_train, float), np.asarray(X_aux, float)
        players = np.vstack([X_train, X_aux])
        y_players = np.concatenate([np.asarray(y_train).astype(int), np.ones(len(X_aux), dtype=int)])
        values = V.knn_shapley(players, y_players, X_train, y_train, k=self.k, exclude_self=True)
        return values[len(X_train):]


class _DataOOB(QualityMethod):
    name = "DataOOB"

    def __init__(self, n_models: int = 50):
        self.n_models = n_models

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        det = _detector(detector, X_train, y_train, random_state)
        return V.data_oob(det, X_train, y_train, X_aux, self.n_models, random_state)


class _LAVA(QualityMethod):
    name = "LAVA"

    def __init__(self, eps_rel: float = 0.1):
        self.eps_rel = eps_rel

    def score_auxiliary(self, X_train, y_train, X_aux, *, detector=None, random_state: int = 0) -> np.ndarray:
        return V.lava(X_train, y_train, X_aux, self.eps_rel)


def get_method(name: str, *, n_models: int = 50, prior: tuple[float, float] | None = None,
               options: dict | None = None) -> QualityMethod:
    """The method called ``name`` (one of :data:`METHODS`, or ``EAP_<w>`` for EAP with prior ``(w, 1 − w)``).

    ``options``: keyword arguments of :class:`EAP` (a protocol's :func:`~calad_lib.eap.protocols.estimator_options`);
    their ``closed`` also sets the balls of the Rarity baseline.
    """
    options = dict(options or {})
    if name.startswith("EAP_"):
        try:
            w = float(name[4:])
        except ValueError:
            w = -1.0
        if not 0 < w < 1:
            raise ValueError(f"unknown method {name!r}: EAP_<w> needs 0 < w < 1, e.g. EAP_0.1")
        return _EAPFamily("EAP", prior=(w, 1.0 - w), options=options)
    if name in FAMILY:
        return _EAPFamily(name, prior=prior, options=options)
    if name == "RandomEV":
        return _RandomEV()
    if name == "Rarity":
        return _Rarity(closed=options.get("closed", True))
    if name in ("LOO", "DataBanzhaf", "INF", "AME"):
        return _Utility(name, n_models)
    if name == "KNNShap":
        return _KNNShap()
    if name == "DataOOB":
        return _DataOOB(n_models)
    if name == "LAVA":
        return _LAVA()
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)} or EAP_<w>")
