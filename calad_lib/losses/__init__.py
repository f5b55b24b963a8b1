"""Base losses of thesis §4.1 and the models that carry them (see :mod:`calad_lib.detector`).

>>> model = calad.losses.build_model("svdd", in_shape=(1, 28, 28), mean=m, std=s, dataset="fashion_mnist")
>>> z, eta, score = model.outputs(x)           # x: raw images in [0, 1]
>>> model.loss(x, y)                           # per-sample loss, (N,)

``build_model`` returns an *untrained* model; :func:`calad_lib.train.train` fits it (and,
for SVDD, sets the centre c).
"""
from __future__ import annotations

from typing import Sequence

from ..nets import AE_NETS, FCDD_CFGS, UNET_NETS, VECTOR_NETS, Classifier, build_net, default_net
from .functional import (HSC_V_MIN, PROB_EPS, hsc_eta, hsc_logit, hsc_loss, hsc_v, logistic_loss, prob_logit,
                         pseudo_huber)
from .ssim import gaussian_window, ssim, ssim_map
from .models import (BaseModel, FCDDModel, HSCModel, LogisticModel, Preprocess, SSIMModel, SVDDModel, UNetModel,
                     input_stats)

__all__ = ["LOSSES", "DETECTION_LOSSES", "PIXEL_LOSSES", "SUPERVISED", "build_model", "input_stats",
           "pseudo_huber", "hsc_loss", "hsc_eta", "hsc_logit", "hsc_v", "logistic_loss", "prob_logit",
           "BaseModel", "SVDDModel", "HSCModel", "LogisticModel", "SSIMModel", "UNetModel", "FCDDModel",
           "Preprocess", "HSC_V_MIN", "PROB_EPS", "ssim", "ssim_map", "gaussian_window"]

DETECTION_LOSSES = ("svdd", "hsc", "logistic", "ssim")
PIXEL_LOSSES = ("fcdd", "ssim_pixel", "unet")
LOSSES = DETECTION_LOSSES + PIXEL_LOSSES
#: losses trained with outlier exposure (labels y = 1 on OE data)
SUPERVISED = ("hsc", "logistic", "fcdd", "unet")
_NETS_FOR = {"svdd": VECTOR_NETS, "hsc": VECTOR_NETS, "logistic": VECTOR_NETS, "ssim": AE_NETS,
             "ssim_pixel": AE_NETS, "unet": UNET_NETS, "fcdd": tuple(FCDD_CFGS)}


def build_model(loss: str, in_shape: Sequence[int], mean=None, std=None, dataset: str | None = None, *,
                net: str | None = None, rep_dim: int | None = None, latent_dim: int = 100,
                gauss_std: float | None = None, weights=None) -> BaseModel:
    """An untrained model for base loss ``loss`` on raw images of shape ``in_shape`` ``(C, H, W)``.

    ``mean``/``std``: z-score statistics per channel the network sees (one value for SSIM
    models, which see grayscale; see :func:`input_stats`); default 0 and 1. ``dataset``
    picks the thesis' network (:func:`calad_lib.nets.default_net`); ``net`` overrides it.
    ``rep_dim`` (vector networks), ``latent_dim`` (autoencoders, 100), ``gauss_std`` and
    ``weights`` (a local VGG11-BN state-dict file; FCDD) tune the network.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    try:
        in_shape = tuple(int(v) for v in in_shape)
    except TypeError:
        raise ValueError(f"in_shape must be (C, H, W), got {in_shape!r}") from None
    if len(in_shape) != 3 or min(in_shape) < 1:
        raise ValueError(f"in_shape must be (C, H, W) with positive sizes, got {in_shape!r}")
    name = net or default_net(loss, in_shape, dataset)
    if name not in _NETS_FOR[loss]:
        raise ValueError(f"network {name!r} does not fit loss {loss!r}; choose one of {', '.join(_NETS_FOR[loss])}")
    net_in = (1, *in_shape[1:]) if loss in ("ssim", "ssim_pixel") else in_shape
    body = build_net(name, net_in, bias=loss != "svdd", rep_dim=rep_dim, latent_dim=latent_dim,
                     gauss_std=gauss_std, weights=weights)
    if loss == "svdd":
        model = SVDDModel(body, in_shape, mean, std)
    elif loss == "hsc":
        model = HSCModel(body, in_shape, mean, std)
    elif loss == "logistic":
        model = LogisticModel(Classifier(body, body.rep_dim), in_shape, mean, std)
    elif loss in ("ssim", "ssim_pixel"):
        model = SSIMModel(body, in_shape, mean, std, pixelwise=loss == "ssim_pixel")
    elif loss == "unet":
        model = UNetModel(body, in_shape, mean, std)
    else:
        model = FCDDModel(body, in_shape, mean, std)
    model.spec = {"loss": loss, "in_shape": list(in_shape), "dataset": dataset, "net": name, "rep_dim": rep_dim,
                  "latent_dim": latent_dim, "gauss_std": gauss_std}
    return model
