"""Two localization problems whose answer is known, for per-pixel Platt against the location-adaptive calibrators."""
from __future__ import annotations

import torch

from .. import metrics
from ..calibration import LocalCalibrator, LocationPlatt, PlattScaling
from ..calibration.logistic import one_thread
from ..detector import AnomalyModel, Outputs
from ..losses import logistic_loss
from ..synthesis import paste_patches

__all__ = ["BrightnessModel", "toy_case"]


class BrightnessModel(AnomalyModel):
    """A toy pixel-wise base model: logit ``gain · (mean over channels of x − 0.5)`` at every pixel."""

    pixelwise, name = True, "brightness"

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.gain = float(gain)

    def outputs(self, x):
        z = self.gain * (x.mean(1) - 0.5)
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x, y):
        z = self.logit(x)
        y = torch.as_tensor(y, dtype=z.dtype, device=z.device)
        return logistic_loss(z, (y.view(-1, 1, 1) if y.ndim == 1 else y).expand_as(z)).flatten(1).mean(1)


def _toy_images(case: str, n: int, size: int, g: torch.Generator, region, radius):
    """``(normal, anomalous, masks)`` of a toy case; ``anomalous`` holds local anomalies with ``masks``."""
    if case == "corner":      # brighter patches, only ever in the top-left corner
        normal = (0.5 + 0.1 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
        source = (0.62 + 0.1 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
        x, m = paste_patches(normal, source, generator=g, region=region, radius=radius)
        return normal, x, m, source
    offset = 0.3 * torch.rand(n, 1, 1, 1, generator=g) - 0.15   # "offset": each image has its own brightness
    normal = (0.5 + offset + 0.05 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
    _, m = paste_patches(normal, torch.ones_like(normal), generator=g, radius=radius)
    x = (normal + 0.12 * m[:, None]).clamp(0, 1)
    return normal, x, m, (normal + 0.12).clamp(0, 1)


def toy_case(case: str = "corner", *, n: int = 200, size: int = 32, seed: int = 0) -> dict:
    """Per-pixel Platt versus location-adaptive calibrators where the right answer is known.

    ``case="corner"``: anomalies are brighter patches that only ever appear in the top-left corner (the
    region ``[0, 0.35]²``); a calibrator that knows the position can discount bright pixels elsewhere.
    ``case="offset"``: each image has its own overall brightness and anomalies are locally brighter
    patches anywhere; a calibrator that sees the image's mean can subtract it. In both, the base logit is
    the pixel's brightness (:class:`BrightnessModel`).

    Calibrators: ``platt`` (the thesis' per-pixel protocol: normal images 0, whole synthetic anomalies 1),
    ``platt_patches`` (one Platt fitted on the pasted anomalies and their masks), ``location_platt``
    (:class:`LocationPlatt` on the same), ``local_position`` and ``local_context`` (:class:`LocalCalibrator`
    on logit + position, and logit + context + position, on the same). Returns a dict of the test set's
    ``pixel_auroc``, ``aupro`` and ``rank_corr`` (mean within-image Spearman ρ with the base map) per model.
    """
    if case not in ("corner", "offset"):
        raise ValueError(f"unknown toy case {case!r}; choose 'corner' or 'offset'")
    with one_thread():
        return _toy_case(case, n, size, seed)


def _toy_case(case: str, n: int, size: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(int(seed))
    region = (0.0, 0.35, 0.0, 0.35) if case == "corner" else (0.0, 1.0, 0.0, 1.0)
    radius = (0.05, 0.12)
    base = BrightnessModel()
    normal, x_an, m_an, whole = _toy_images(case, n, size, g, region, radius)
    test_normal, test_an, test_m, _ = _toy_images(case, n // 2, size, g, region, radius)
    z0, z1 = base.logit(normal), base.logit(x_an)
    z_pasted, y_pasted = torch.cat([z0, z1]), torch.cat([torch.zeros_like(m_an), m_an])
    cals = {
        "platt": PlattScaling().fit(torch.cat([z0, base.logit(whole)]).double(),
                                    torch.cat([torch.zeros(n), torch.ones(n)])),
        "platt_patches": PlattScaling().fit(z_pasted.double(), y_pasted),
        "location_platt": LocationPlatt().fit(z_pasted, y_pasted),
        "local_position": LocalCalibrator(("logit", "position"), seed=seed).fit(z_pasted, y_pasted),
        "local_context": LocalCalibrator(("logit", "context", "position"), seed=seed).fit(z_pasted, y_pasted),
    }
    x_test = torch.cat([test_normal, test_an])
    masks = torch.cat([torch.zeros_like(test_m), test_m])
    z = base.logit(x_test)
    scores = {"base": z, **{k: c.transform(z.double() if k.startswith("platt") else z) for k, c in cals.items()}}
    out = {}
    for k, s in scores.items():
        s = s.detach().double()
        out[k] = {"pixel_auroc": metrics.pixel_auroc(masks, s), "aupro": metrics.aupro(masks, s),
                  "rank_corr": metrics.within_image_rank_corr(z, s)}
    return out
