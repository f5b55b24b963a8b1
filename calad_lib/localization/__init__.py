"""Chapter 06: localization — per-pixel calibration, AUPRO, Table 4.3 and location-adaptive calibration.

================  ===========================================================================
module            holds
================  ===========================================================================
``experiment``    one run (class × pixel-wise loss × seed): train, calibrate, evaluate; the grid
``tables``        Table 4.3's layout, the thesis' Tables 4.3 and C.1–C.12, ours beside them
``claims``        the claims of §4.3.2 and the location-adaptive gains as verdicts and sentences
``heatmaps``      the heatmap figures
``toy``           two problems with a known answer for the location-adaptive calibrators
================  ===========================================================================

The location-adaptive calibrators themselves share the calibration API:
:class:`calad_lib.calibration.LocalCalibrator` and :class:`calad_lib.calibration.LocationPlatt`.
"""
from . import claims, experiment, heatmaps, tables, toy
from .claims import (adaptive_gains, adaptive_text, mechanisms, mechanisms_text, verdict_margins, verdict_summary,
                     verdicts)
from .experiment import (HEATMAP_METHODS, LOSS_LABELS, LOSSES, METHOD_LABELS, METHODS, PAPER_METHODS, RESULTS_VERSION,
                         LocalizationConfig, check_configs, configs_from_params, evaluate_prepared, prepare, run,
                         run_grid, store_for)
from .heatmaps import heatmap_figure, heatmaps_for, load_heatmaps
from .tables import (DATA_LABELS, EXTRA_ROWS, LOWER_IS_BETTER, class_counts_table, describe_grid, fitted_params,
                     headline, per_loss, side_by_side, styled, table_4_3, thesis_by_dataset, thesis_class_counts,
                     thesis_layout, thesis_per_class, thesis_table_4_3)
from .toy import BrightnessModel, toy_case

__all__ = ["claims", "experiment", "heatmaps", "tables", "toy", "LocalizationConfig", "prepare", "evaluate_prepared",
           "run", "run_grid", "store_for", "check_configs", "configs_from_params", "METHODS", "PAPER_METHODS", "RESULTS_VERSION",
           "LOSSES", "LOSS_LABELS", "METHOD_LABELS", "HEATMAP_METHODS", "heatmap_figure", "heatmaps_for",
           "load_heatmaps", "table_4_3", "thesis_table_4_3", "thesis_per_class", "thesis_layout",
           "thesis_class_counts", "EXTRA_ROWS", "LOWER_IS_BETTER", "DATA_LABELS", "styled", "thesis_by_dataset",
           "class_counts_table", "per_loss", "side_by_side", "describe_grid", "headline", "fitted_params", "verdicts",
           "verdict_summary", "verdict_margins", "adaptive_gains", "mechanisms", "mechanisms_text", "adaptive_text",
           "BrightnessModel", "toy_case"]
