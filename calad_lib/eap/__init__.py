"""The Expected Anomaly Posterior (Perini et al.): quality scores for auxiliary anomalies.

================  ===========================================================================
module            holds
================  ===========================================================================
``ssdo``          SSDO, the semi-supervised detector with an Isolation Forest prior
``rarity``        the rarity score (eq. 6) and the estimate k̂ (app. A.2)
``scaler``        the squashing scaler (eq. 4)
``posterior``     the density (eq. 3) and EAP, the posterior mean (§3.2)
``valuation``     data valuation methods adapted to auxiliary anomalies (app. A.1)
``baselines``     EAP and the twelve baselines behind one ``score_auxiliary`` interface
``datasets``      offline datasets and the realistic / indistinguishable / unrealistic protocol (§5.1)
``evaluation``    AUC_QLT, learning curves, AULC_G, ACC_G, AULC_P, average ranks
``unrealistic``   the two constructions of unrealistic auxiliary anomalies (authors' and calad's)
``protocols``     the authors' protocol and calad's, one named option per difference
``experiment``    seeded, resumable runs of the protocol, variant and stretch studies
``paper``         the paper's published tables, to print beside ours
``tables``        the paper's tables as HTML beside ours, and its claims as verdicts
``comparison``    the paper, the authors' protocol and calad's variants side by side
================  ===========================================================================
"""
from . import (baselines, comparison, datasets, evaluation, experiment, paper, protocols, tables, unrealistic,
               valuation)
from .baselines import DESCRIPTIONS, METHODS, get_method
from .posterior import EAP, EAPComponents, density, expected_anomaly_posterior
from .rarity import Rarity, ball_ranks, estimate_k, estimate_k_normals, k_posterior, reverse_neighbour_ranks
from .scaler import SquashingScaler
from .ssdo import SSDO, squash

__all__ = ["EAP", "EAPComponents", "SSDO", "Rarity", "SquashingScaler", "density", "expected_anomaly_posterior",
           "estimate_k", "estimate_k_normals", "ball_ranks", "k_posterior", "reverse_neighbour_ranks", "squash",
           "METHODS", "DESCRIPTIONS", "get_method", "baselines", "comparison", "datasets", "evaluation", "experiment",
           "paper", "protocols", "tables", "unrealistic", "valuation"]
