"""Chapter 05: the detection experiments of thesis §4.2–§4.3.1.

================  ===========================================================================
module            holds
================  ===========================================================================
``experiment``    one experiment (dataset × class × loss × seed): train, calibrate, evaluate
``evaluation``    the metrics of one model's row, and the label-free predictors of κ
``grid``          the grid: plan and validate from the chapter's parameters, run, resume
``thesis``        the thesis' Tables 4.1, 4.2 and B.1–B.16, transcribed
``tables``        our tables in the thesis' layouts, beside the thesis'
``claims``        the claims of §4.3.1 as verdicts decided by the numbers; conformal detection
``recorded``      recorded runs too long for a book build (the thesis protocol), and what a grid costs
================  ===========================================================================
"""
from . import claims, evaluation, experiment, grid, recorded, tables, thesis
from .experiment import (METHOD_LABELS, METHODS, ONE_VS_ALL_KINDS, PER_CLASS_KINDS, SOURCES, THESIS_METHODS,
                         ExperimentConfig, loss_order, prepare, run_experiment)
from .grid import CHAPTER, all_classes, class_labels, plan, results, run_grid, store_for, validate_data
from .tables import (DATASET_NAMES, HIGHER_IS_BETTER, appendix_b, auroc_gap, class_table, compare_by_method,
                     describe_plan, headline, preset_table, same_classes, side_by_side, summary_table, table_4_1)
from .thesis import (METRICS, THESIS_DATASETS, thesis_class_table, thesis_frame, thesis_summary, thesis_table,
                     thesis_table_name)

__all__ = ["claims", "evaluation", "experiment", "grid", "recorded", "tables", "thesis", "ExperimentConfig",
           "run_experiment", "prepare", "METHODS", "THESIS_METHODS", "METHOD_LABELS", "SOURCES", "ONE_VS_ALL_KINDS",
           "PER_CLASS_KINDS", "loss_order", "CHAPTER", "plan", "all_classes", "validate_data", "store_for",
           "run_grid", "results", "class_labels", "summary_table", "class_table", "side_by_side", "describe_plan",
           "preset_table", "table_4_1", "same_classes", "appendix_b", "auroc_gap", "headline", "compare_by_method",
           "HIGHER_IS_BETTER", "DATASET_NAMES", "METRICS", "THESIS_DATASETS", "thesis_table", "thesis_summary",
           "thesis_class_table", "thesis_frame", "thesis_table_name"]
