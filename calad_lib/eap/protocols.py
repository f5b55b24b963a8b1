"""The two ways chapter 07 computes EAP and runs §5.1: as the authors' code does, or with calad's choices.

The authors' public code (``Lorenzo-Perini/ExpectedAnomalyPosterior``: ``EAP.py``,
``px_estimator.py``, ``pygivenxcombinedpx.py``, ``rr_score.py``, ``dataloader/fetcher_tabular.py``,
``dataval/api.py`` and the SSDO set-up of ``Notebook.ipynb``) differs from calad's first reading of
the paper in the points of :data:`CHOICES`, each a named option with the authors' value first.
:func:`resolve` turns a protocol name and overrides into the full set of choices (validated before
any work, one-line errors); :func:`flip` is the authors' protocol with one choice set to calad's.
"""
from __future__ import annotations

import pandas as pd

from .posterior import EAP
from .ssdo import SSDO

__all__ = ["CHOICES", "PROTOCOLS", "VARIANTS", "resolve", "flip", "changed", "describe", "estimator_options",
           "split_options", "affected_methods", "model"]

#: choice: (authors' value, calad's value, what it sets)
CHOICES = {
    "k_rule": ("authors", "calad", "k̂ (app. A.2): the smallest k_m from the training normals' balls, searched from "
               "k = 5 (authors), or from every other training example's ball, from k = 1 (calad)"),
    "centres": ("normals", "all", "centres of eq. 3's balls, of its normalising sum and of the evidence count n: "
                "the training normals (authors) or all training examples (calad)"),
    "balls": ("open", "closed", "k-NN balls of the rarity: d < r (authors' code) or d ≤ r (eq. 6, calad)"),
    "ssdo_prior": ("minmax", "squashed", "SSDO's Isolation Forest prior: min-max scaled scores (pyod's IForest, "
                   "authors) or squashed at the (1 − m/n) quantile (calad)"),
    "threshold": ("percentile", "midpoint", "λ of eq. 4: the ⌊100(1 − m/n)⌋-th percentile of the training scores "
                  "(anomatools, authors) or midway between the m-th and (m+1)-th largest (calad)"),
    "eap_fit": ("subsets", "once", "EAP: the mean over random subsamples of the training set (authors) or one fit "
                "on all of it (calad)"),
    "unrealistic": ("benchmark", "stretch", "unrealistic anomalies: other datasets reduced by PCA, feature "
                    "agglomeration or random projection, rescaled with the target's training statistics (authors), "
                    "or z-scored, randomly projected and stretched (calad)"),
    "train_anomalies": ("kmeans", "random", "training anomalies: the first in KMeans cluster order (authors) or "
                        "drawn at random (calad)"),
    "split": ("capped", "proportional", "counts: 10 % / 50 % / 40 % with the authors' caps, at most 1000 training "
              "normals, unbiased standard deviations (authors), or plain proportions (calad)"),
    "aulc": ("trapezoid", "mean", "area under a learning curve: unnormalised trapezoid up to G − 1 (authors) or "
             "normalised mean over [0, G] (calad)"),
}
PROTOCOLS = ("authors", "calad")
#: the choices a variant study may flip one at a time (the area rule only changes learning-curve metrics)
VARIANTS = tuple(c for c in CHOICES if c != "aulc")

_FAMILY = ("EAP", "P_x", "P_y|x", "P_y|x+NP_x")
_NO_DETECTOR = ("Rarity", "RandomEV", "KNNShap", "LAVA")


def resolve(protocol: str = "authors", **overrides) -> dict:
    """Every choice of ``protocol`` (``"authors"`` or ``"calad"``), with ``overrides`` applied and validated."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    out = {name: vals[PROTOCOLS.index(protocol)] for name, vals in CHOICES.items()}
    for name, value in overrides.items():
        if name not in CHOICES:
            raise ValueError(f"unknown protocol choice {name!r}; choose among {', '.join(CHOICES)}")
        if value not in CHOICES[name][:2]:
            raise ValueError(f"choice {name} must be {CHOICES[name][0]!r} or {CHOICES[name][1]!r}; got {value!r}")
        out[name] = value
    return out


def flip(choice: str) -> dict:
    """The override that sets ``choice`` to calad's value (applied to the authors' protocol)."""
    if choice not in VARIANTS:
        raise ValueError(f"unknown variant {choice!r}; choose among {', '.join(VARIANTS)}")
    return {choice: CHOICES[choice][1]}


def changed(choices: dict, protocol: str) -> list[str]:
    """The choices in which ``choices`` depart from ``protocol``'s."""
    base = resolve(protocol)
    return [c for c in CHOICES if choices.get(c, base[c]) != base[c]]


def describe() -> pd.DataFrame:
    """One row per choice: the authors' value, calad's, and what it sets (for the chapter's table)."""
    return pd.DataFrame([{"choice": c, "authors": a, "calad": b, "what it sets": doc} for c, (a, b, doc) in CHOICES.items()]
                        ).set_index("choice")


def estimator_options(choices: dict, subsets: int) -> dict:
    """Keyword arguments of :class:`calad_lib.eap.EAP` for ``choices`` (``subsets`` when EAP is averaged)."""
    return {"k_rule": choices["k_rule"], "centres": choices["centres"], "closed": choices["balls"] == "closed",
            "threshold": choices["threshold"], "subsets": int(subsets) if choices["eap_fit"] == "subsets" else 0}


def model(protocol: str = "authors", subsets: int = 100, random_state: int = 0, **overrides) -> EAP:
    """An unfitted :class:`~calad_lib.eap.EAP` (with its SSDO, k = 10) computing EAP as ``protocol`` does."""
    ch = resolve(protocol, **overrides)
    det = SSDO(k=10, random_state=random_state, prior=ch["ssdo_prior"])
    return EAP(detector=det, random_state=random_state, **estimator_options(ch, subsets))


def split_options(choices: dict) -> dict:
    """Keyword arguments of :func:`calad_lib.eap.datasets.make_split` for ``choices``."""
    return {k: choices[k] for k in ("unrealistic", "train_anomalies", "split")}


def affected_methods(choice: str, methods) -> list[str]:
    """The methods whose quality scores can change when ``choice`` changes (the others are reused)."""
    methods = list(methods)
    if choice in ("k_rule", "centres", "threshold"):
        return [m for m in methods if m in _FAMILY]
    if choice == "eap_fit":
        return [m for m in methods if m == "EAP"]
    if choice == "balls":
        return [m for m in methods if m in _FAMILY + ("Rarity",)]
    if choice == "ssdo_prior":
        return [m for m in methods if m not in _NO_DETECTOR]
    return methods
