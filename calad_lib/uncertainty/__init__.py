"""Chapter 08: outlier exposure and uncertainty (seeds 003, 004).

====================  ======================================================================
module                holds
====================  ======================================================================
``density``           an exact-likelihood image model (PixelCNN) and the test statistics on it
``likelihood``        part A: the out-of-distribution sources and what the statistics make of them
``estimation_error``  part B: the minimal estimation error that drives the AUROC to 0
``methods``           the energy, MC-dropout and ensemble models
``training``          fitting them (one model cache), every method by name
``experiment``        part C: every method with and without OE, calibrated post hoc, evaluated
``tables``            part C's tables, verdicts and figures
====================  ======================================================================
"""
from . import density, estimation_error, experiment, likelihood, methods, tables, training
from .density import DensityConfig, DensityDetector, PixelCNN, fit_density, likelihood_ratio, log_prob, typicality
from .experiment import (CALIBRATIONS, OE_SOURCE, REGIME_LABELS, REGIMES, evaluate, fit_task, run_experiments,
                         run_one, store_for, task_data, train_sources)
from .likelihood import detection_table, ood_sources, simple_images, statistic_verdicts
from .methods import Ensemble, EnergyModel, MCDropoutModel, mean_prob_logit
from .tables import claims, ece_figure, metric_table, regime_table, reliability_figure, spread_table, summarize
from .training import METHODS, FitConfig, fit, fit_method

__all__ = ["density", "estimation_error", "experiment", "likelihood", "methods", "tables", "training",
           "DensityConfig", "DensityDetector", "PixelCNN", "fit_density", "log_prob", "typicality", "likelihood_ratio",
           "detection_table", "ood_sources", "simple_images", "statistic_verdicts", "EnergyModel", "MCDropoutModel",
           "Ensemble", "mean_prob_logit", "FitConfig", "fit", "fit_method", "METHODS", "evaluate", "run_experiments",
           "run_one", "store_for", "task_data", "fit_task", "train_sources", "OE_SOURCE", "REGIMES", "CALIBRATIONS", "REGIME_LABELS", "summarize",
           "claims", "metric_table", "regime_table", "spread_table", "reliability_figure", "ece_figure"]
