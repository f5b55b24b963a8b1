"""Published numbers of the EAP paper (Perini et al.), to print beside ours.

Table 1 (means over 18 image and 22 tabular datasets × 10 seeds; ranks 1-13) and
Table 3 (ranks of the prior variants, all 40 datasets), transcribed from the paper.
Columns: ``auc_qlt, aulc_g, acc_g, aulc_p`` and their ranks ``r...``, then ``avg_rank``.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["table1", "table3"]

_COLS = ["auc_qlt", "aulc_g", "acc_g", "aulc_p", "rauc_qlt", "raulc_g", "racc_g", "raulc_p", "avg_rank"]

_IMAGE = {
    "EAP": (0.803, 0.717, 0.833, 0.688, 1.99, 3.94, 3.12, 3.66, 3.18),
    "Rarity": (0.681, 0.698, 0.786, 0.738, 4.21, 5.07, 5.34, 7.96, 5.65),
    "LAVA": (0.742, 0.665, 0.755, 0.709, 2.70, 8.17, 7.44, 4.71, 5.75),
    "P_y|x+NP_x": (0.669, 0.700, 0.795, 0.729, 4.80, 5.60, 5.61, 7.13, 5.79),
    "LOO": (0.537, 0.693, 0.777, 0.694, 7.22, 5.86, 6.56, 6.14, 6.44),
    "RandomEV": (0.491, 0.696, 0.793, 0.756, 8.92, 6.21, 5.93, 9.90, 7.38),
    "DataOOB": (0.505, 0.685, 0.739, 0.668, 8.66, 7.53, 9.55, 4.35, 7.52),
    "KNNShap": (0.509, 0.695, 0.794, 0.754, 8.58, 6.36, 5.95, 9.44, 7.58),
    "AME": (0.512, 0.693, 0.793, 0.756, 8.56, 6.42, 5.85, 9.94, 7.69),
    "INF": (0.488, 0.681, 0.778, 0.744, 8.87, 7.01, 6.73, 8.55, 7.79),
    "P_y|x": (0.494, 0.671, 0.710, 0.644, 9.30, 8.55, 10.62, 3.04, 7.88),
    "DataBanzhaf": (0.500, 0.668, 0.775, 0.748, 8.71, 8.01, 6.68, 8.54, 7.98),
    "P_x": (0.502, 0.535, 0.600, 0.733, 8.59, 12.37, 11.72, 7.72, 10.10),
}
_TABULAR = {
    "EAP": (0.821, 0.779, 0.839, 0.717, 1.91, 4.27, 4.28, 2.11, 3.14),
    "Rarity": (0.724, 0.782, 0.839, 0.753, 3.59, 4.42, 4.91, 4.92, 4.46),
    "LAVA": (0.723, 0.744, 0.794, 0.747, 3.62, 7.48, 7.17, 4.08, 5.59),
    "P_y|x+NP_x": (0.676, 0.758, 0.815, 0.771, 4.93, 6.16, 6.23, 6.16, 5.87),
    "KNNShap": (0.541, 0.770, 0.825, 0.805, 7.61, 5.24, 5.29, 9.15, 6.82),
    "RandomEV": (0.502, 0.773, 0.827, 0.809, 8.25, 4.92, 5.33, 9.72, 7.06),
    "AME": (0.498, 0.772, 0.827, 0.809, 8.53, 5.05, 5.37, 9.75, 7.17),
    "LOO": (0.504, 0.750, 0.798, 0.792, 7.90, 6.87, 7.10, 7.77, 7.41),
    "P_x": (0.554, 0.703, 0.768, 0.752, 6.77, 10.39, 9.29, 4.69, 7.78),
    "P_y|x": (0.533, 0.712, 0.748, 0.753, 8.20, 10.56, 10.66, 4.30, 8.43),
    "DataOOB": (0.513, 0.729, 0.768, 0.785, 8.48, 9.39, 9.84, 7.43, 8.78),
    "INF": (0.434, 0.742, 0.795, 0.816, 10.29, 7.78, 7.37, 10.40, 8.96),
    "DataBanzhaf": (0.415, 0.736, 0.789, 0.817, 10.92, 8.47, 8.16, 10.53, 9.52),
}
_TABLE3 = {  # method: (rAUC_QLT, rACC_G, avg rank); EAP uses alpha0 = m/n
    "EAP": (2.92, 2.73, 2.83), "EAP_0.2": (2.78, 3.25, 3.02), "EAP_0.3": (3.39, 3.40, 3.40),
    "EAP_0.1": (3.01, 3.46, 3.24), "EAP_0.05": (3.63, 3.78, 3.71), "EAP_0.01": (4.10, 3.54, 3.82),
    "EAP_0.4": (4.71, 4.79, 4.75),
}


def table1(kind: str) -> pd.DataFrame:
    """The paper's Table 1 for ``kind`` (``"image"`` or ``"tabular"``), indexed by our method names."""
    if kind not in ("image", "tabular"):
        raise ValueError(f"kind must be 'image' or 'tabular'; got {kind!r}")
    rows = _IMAGE if kind == "image" else _TABULAR
    return pd.DataFrame.from_dict(rows, orient="index", columns=_COLS).rename_axis("method")


def table3() -> pd.DataFrame:
    """The paper's Table 3 (prior sensitivity): rAUC_QLT, rACC_G and their average."""
    return pd.DataFrame.from_dict(_TABLE3, orient="index",
                                  columns=["rauc_qlt", "racc_g", "avg_rank"]).rename_axis("method")
