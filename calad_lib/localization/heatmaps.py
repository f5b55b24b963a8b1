"""The heatmap figures of chapter 06: one defective test image, its ground truth and each method's map."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..runs import ResultStore
from .experiment import HEATMAP_METHODS, LOSS_LABELS, METHOD_LABELS, LocalizationConfig

__all__ = ["load_heatmaps", "heatmaps_for", "heatmap_figure"]


def load_heatmaps(cfg: LocalizationConfig, store: ResultStore) -> dict | None:
    """The heatmap data a finished run of ``cfg`` saved (see :func:`~.experiment.heatmap_data`), or ``None``."""
    d = cfg.as_dict()
    if not cfg.heatmaps or not store.done(d):
        return None
    with np.load(store.companion(d, "heatmaps.npz"), allow_pickle=False) as z:
        return {"image": z["image"].astype(np.float32), "mask": z["mask"].astype(bool),
                "defect": [str(v) for v in z["defect"]],
                "maps": {k[4:]: z[k].astype(np.float32) for k in z.files if k.startswith("map_")}}


def heatmaps_for(configs: Sequence[LocalizationConfig], store: ResultStore, loss: str) -> tuple[str, dict | None]:
    """``(title, heatmap data)`` of the first run of ``loss`` in ``configs`` (its first seed) that saved maps."""
    for cfg in configs:
        if cfg.loss == loss and cfg.heatmaps:
            hm = load_heatmaps(cfg, store)
            if hm is not None:
                return f"{LOSS_LABELS.get(loss, loss)}, {cfg.class_name}", hm
    return LOSS_LABELS.get(loss, loss), None


def heatmap_figure(title: str, hm: dict | None, methods: Sequence[str] = HEATMAP_METHODS, *, index: int = 0,
                   width: float = 7.2):
    """One defective test image of ``hm`` (see :func:`heatmap_data`) in rows of three panels: the image,
    its ground truth and the scaled map of each of ``methods``, with one colour bar for the maps.
    ``title`` heads the figure (with the defect type). Returns the matplotlib figure."""
    if hm is None:
        fig, ax = plt.subplots(figsize=(width, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no heatmaps saved for this preset", ha="center", va="center", fontsize=11)
        return fig
    methods = [m for m in methods if m in hm["maps"]]
    n = 2 + len(methods)
    rows = -(-n // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(width, width / 3.4 * rows + 0.5), squeeze=False)
    img = np.clip(hm["image"][index], 0, 1)
    axes[0, 0].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
    axes[0, 1].imshow(hm["mask"][index], cmap="gray", vmin=0, vmax=1)
    shown = None
    for j, m in enumerate(methods, start=2):
        shown = axes.flat[j].imshow(hm["maps"][m][index], cmap="inferno", vmin=0, vmax=1)
    for j, label in enumerate(["image", "ground truth", *[METHOD_LABELS.get(m, m) for m in methods]]):
        axes.flat[j].set_title(label, fontsize=10)
    for j, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if j >= n:
            ax.axis("off")
    fig.suptitle(f"{title}: {hm['defect'][index]}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    if shown is not None:
        cax = fig.add_axes((0.91, 0.15, 0.02, 0.7), label="<colorbar>")
        bar = fig.colorbar(shown, cax=cax)
        bar.set_label("score, scaled per model", fontsize=10)
        bar.ax.tick_params(labelsize=9)
    return fig
