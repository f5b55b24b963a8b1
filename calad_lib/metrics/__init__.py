"""Metrics of detection, calibration and localization (thesis §2.4.3, §4.2.2, §4.3), as plain functions of
labels and scores (arrays or tensors): :mod:`.scores` (AUROC, ECE/MCE, per-pixel versions, κ),
:mod:`.aupro`, :mod:`.ranks` (Spearman, Wilcoxon, within-image rank correlation) and
:mod:`.conformal` (split-conformal p-values, Benjamini–Hochberg)."""
from .aupro import aupro, aupro_slow, label_regions, pro_curve
from .conformal import benjamini_hochberg, conformal_pvalues
from .ranks import format_p, spearman, wilcoxon_p, within_image_rank_corr
from .scores import (DEFAULT_BINS, auroc, ece, kappa, mce, pairs_changed, pixel_auroc, pixel_ece, pixel_mce,
                     reliability)

__all__ = ["DEFAULT_BINS", "auroc", "reliability", "ece", "mce", "pixel_auroc", "pixel_ece", "pixel_mce", "kappa",
           "pairs_changed", "aupro", "aupro_slow", "pro_curve", "label_regions", "spearman", "wilcoxon_p", "format_p",
           "within_image_rank_corr", "conformal_pvalues", "benjamini_hochberg"]
