"""The EAP paper's evaluation metrics (§5.1): AUC_QLT, learning curves, AULC_G, ACC_G, AULC_P, ranks.

* **AUC_QLT**: AUROC of the quality scores against the pseudo-quality labels (realistic = good).
* **LC_G**: test accuracy of a classifier trained on ``D`` plus the ``j`` best-ranked auxiliary
  anomalies (labelled anomalous), for ``j`` from 0 to ``G = l/3``; **ACC_G** is its value at ``G``
  and **AULC_G** its area, by one of two rules (:func:`aulc`): ``"mean"`` (calad: the trapezoid
  mean accuracy over ``[0, G]``) or ``"trapezoid"`` (the authors' ``evaluate_quality_metric``:
  ``np.trapz`` of the accuracies at ``j = 0 … G − 1`` with step ``1/G``, not normalised, so it
  is ``(G − 1)/G`` times a mean).
* **LC_P**: the same, adding the *worst*-ranked first, up to ``P = 2l/3``; **AULC_P** is its
  area (lower = the method keeps poor anomalies last).

The authors' curves add one anomaly at a time (``steps=None`` in :func:`curve_counts`); fewer
points, evenly spread, approximate them at a fraction of the cost.
* **Ranks**: per experiment (dataset × seed) methods are ranked 1 (best) … on each metric,
  ties sharing the mean rank; the table reports their average.

The classifier is a random forest for tabular data and an RBF SVM for image features, as
in the paper (scikit-learn defaults apart from the number of trees).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.svm import SVC

__all__ = ["auc_qlt", "ranking", "curve_counts", "LearningCurves", "aulc", "average_ranks", "summary_table",
           "curves_long", "METRICS", "LOWER_IS_BETTER", "AULC_RULES"]

METRICS = ("auc_qlt", "aulc_g", "acc_g", "aulc_p")
LOWER_IS_BETTER = {"aulc_p"}
AULC_RULES = ("mean", "trapezoid")


def auc_qlt(quality, good) -> float:
    """AUROC of quality scores against pseudo-quality labels (0.5 when all scores tie)."""
    q = np.asarray(quality, dtype=float)
    if not np.isfinite(q).all():
        raise ValueError("quality scores contain NaN or infinite values")
    return float(roc_auc_score(np.asarray(good).astype(int), q))


def ranking(quality, random_state: int = 0) -> np.ndarray:
    """Indices of the auxiliary anomalies from best to worst; ties are broken at random (seeded)."""
    q = np.asarray(quality, dtype=float)
    tie = np.random.default_rng([random_state, 303]).random(q.size)
    return np.lexsort((tie, -q))


def curve_counts(l: int, upto: float, steps: int | None, rule: str = "mean") -> np.ndarray:
    """The numbers of added anomalies at which a learning curve is evaluated, from 0 to ``G = round(upto·l)``.

    ``steps=None``: every count (the authors' one anomaly at a time). Otherwise ``steps`` points:
    evenly over ``[0, G]`` (``rule="mean"``), or ``steps − 1`` evenly over ``[0, G − 1]`` (the
    range the authors' area covers) and ``G`` itself (``rule="trapezoid"``).
    """
    if rule not in AULC_RULES:
        raise ValueError(f"unknown AULC rule {rule!r}; choose one of {', '.join(AULC_RULES)}")
    G = int(round(upto * l))
    if steps is None:
        return np.arange(G + 1)
    if steps < 2:
        raise ValueError(f"a learning curve needs at least 2 steps; got {steps}")
    if rule == "mean":
        return np.unique(np.round(np.linspace(0, G, steps)).astype(int))
    inner = np.round(np.linspace(0, max(G - 1, 0), steps - 1)).astype(int)
    return np.unique(np.r_[inner, G])


def aulc(counts, accuracy, total: int, rule: str = "mean") -> float:
    """Area under a learning curve evaluated at ``counts`` (see the module docstring).

    ``"mean"``: the trapezoid mean of the accuracy over the curve's range (``total`` is then
    irrelevant). ``"trapezoid"``: the authors' unnormalised area, the trapezoid rule over the
    counts below ``total`` with x = count/total.
    """
    c = np.asarray(counts, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if rule == "trapezoid":
        inside = c <= total - 1
        x, a = c[inside] / total, a[inside]
        return float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(x)))
    if rule != "mean":
        raise ValueError(f"unknown AULC rule {rule!r}; choose one of {', '.join(AULC_RULES)}")
    x = c / max(total, 1)
    if x[-1] <= x[0]:
        return float(a[0])
    return float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


class LearningCurves:
    """Test accuracy after adding chosen auxiliary anomalies to the training set (fits cached by subset).

    ``model``: ``"rf"`` (random forest, tabular) or ``"svm"`` (RBF SVM, image features).
    """

    def __init__(self, X_train, y_train, X_aux, X_test, y_test, *, model: str = "rf", n_estimators: int = 50,
                 random_state: int = 0):
        if model not in ("rf", "svm"):
            raise ValueError(f"unknown learning-curve model {model!r}; choose 'rf' or 'svm'")
        self.X_train, self.y_train = np.asarray(X_train, float), np.asarray(y_train).astype(int)
        self.X_aux, self.X_test, self.y_test = np.asarray(X_aux, float), np.asarray(X_test, float), np.asarray(y_test)
        self.model, self.n_estimators, self.random_state = model, n_estimators, random_state
        self._cache: dict[tuple, float] = {}
        self.fits = 0

    def _classifier(self):
        if self.model == "svm":
            return SVC(kernel="rbf")
        return RandomForestClassifier(n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=1)

    def accuracy(self, chosen) -> float:
        """Test accuracy of the classifier trained on ``D`` plus ``X_aux[chosen]`` (labelled anomalous)."""
        key = tuple(sorted(int(i) for i in chosen))
        if key not in self._cache:
            idx = np.asarray(key, dtype=int)
            X = np.vstack([self.X_train, self.X_aux[idx]]) if len(idx) else self.X_train
            y = np.concatenate([self.y_train, np.ones(len(idx), dtype=int)])
            clf = self._classifier().fit(X, y)
            self._cache[key] = float(np.mean(clf.predict(self.X_test) == self.y_test))
            self.fits += 1
        return self._cache[key]

    def curve(self, order, counts) -> np.ndarray:
        """Accuracies after adding ``order[:j]`` for each ``j`` in ``counts``."""
        order = np.asarray(order, dtype=int)
        return np.array([self.accuracy(order[:j]) for j in counts])


def average_ranks(frame: pd.DataFrame, metrics=METRICS, by=("dataset", "seed"), method: str = "method") -> pd.DataFrame:
    """Per-experiment ranks (1 = best; ties share the mean rank) of each method on each metric, as columns ``r<metric>``."""
    out = frame.copy()
    for metric in metrics:
        ascending = metric in LOWER_IS_BETTER
        out[f"r{metric}"] = out.groupby(list(by))[metric].rank(ascending=ascending, method="average")
    return out


def summary_table(frame: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """The layout of the paper's Table 1: mean metrics, mean ranks and their average, best first.

    ``frame`` holds the ``study == "main"`` rows of one group of datasets (images or tabular).
    """
    ranked = average_ranks(frame, metrics)
    rank_cols = [f"r{m}" for m in metrics]
    table = ranked.groupby("method")[list(metrics) + rank_cols].mean()
    table["avg_rank"] = table[rank_cols].mean(axis=1)
    return table.sort_values("avg_rank")


def curves_long(frame: pd.DataFrame) -> pd.DataFrame:
    """Learning curves as long rows (dataset, seed, method, curve ``G``/``P``, x, accuracy) for plotting."""
    recs = []
    for r in frame.itertuples(index=False):
        for curve, xs, ys in (("G", r.x_g, r.lc_g), ("P", r.x_p, r.lc_p)):
            recs.extend({"dataset": r.dataset, "seed": r.seed, "method": r.method, "curve": curve, "x": x,
                         "accuracy": a} for x, a in zip(xs, ys))
    return pd.DataFrame.from_records(recs)
