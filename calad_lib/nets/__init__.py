"""The networks of the thesis' experiments (§4.2.1) and which one each loss uses on each dataset.

========================  ================  ==============  =====================
loss                      Fashion-MNIST     CIFAR-10        MVTec AD / MPDD
========================  ================  ==============  =====================
svdd, hsc (vector)        ``lenet28``       ``lenet32``     ``resnet18``
logistic (scalar)         ``lenet28`` + fc  ``lenet32`` +fc ``resnet18`` + fc
ssim, ssim_pixel          ``ae28``          ``ae32``        ``ae_bergmann``
unet (per-pixel logistic) ``unet28``        ``unet32``      ``unet_bergmann``
fcdd                      ``fcdd_small``    ``fcdd_small``  ``fcdd_vgg11``
========================  ================  ==============  =====================

Other datasets (``textures``, ``custom``, ...) pick by input size: 28 → the Fashion-MNIST
column, 32 → CIFAR-10, ≥ 128 → MVTec; anything else (e.g. 64×64 textures) uses ``lenet32``-
style vector networks, ``ae_bergmann`` / ``unet_bergmann`` and ``fcdd_small``.
"""
from __future__ import annotations

from torch import nn

from .autoencoder import AE_SPECS, ConvAutoencoder, UNet, encoder_spec
from .fcdd import FCDD_CFGS, FCDDNet, gaussian_kernel, receptive_field
from .lenet import LENET_PRESETS, Classifier, LeNet
from .resnet import ResNet18

__all__ = ["build_net", "default_net", "NETS", "VECTOR_NETS", "AE_NETS", "UNET_NETS", "FCDD_CFGS", "LeNet",
           "Classifier", "ResNet18", "ConvAutoencoder", "UNet", "FCDDNet", "receptive_field", "gaussian_kernel",
           "encoder_spec", "count_bias"]

VECTOR_NETS = ("lenet28", "lenet32", "resnet18")
AE_NETS = tuple(AE_SPECS)
UNET_NETS = tuple(n.replace("ae", "unet", 1) for n in AE_SPECS)
NETS = VECTOR_NETS + AE_NETS + UNET_NETS + tuple(FCDD_CFGS)

_KIND = {"svdd": "vector", "hsc": "vector", "logistic": "vector", "ssim": "ae", "ssim_pixel": "ae",
         "unet": "unet", "fcdd": "fcdd"}


def _family(dataset: str | None, size: int) -> str:
    kind = (dataset or "").partition(":")[0].lower()
    by_name = {"fashion_mnist": "28", "mnist": "28", "cifar10": "32", "cifar100": "32",
               "mvtec": "large", "mpdd": "large"}
    if kind in by_name:
        return by_name[kind]
    return {28: "28", 32: "32"}.get(size, "large" if size >= 128 else "other")


def default_net(loss: str, in_shape: tuple[int, int, int], dataset: str | None = None) -> str:
    """The network name the thesis uses for ``loss`` on ``dataset`` (see the module table)."""
    if loss not in _KIND:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(_KIND)}")
    fam, kind = _family(dataset, in_shape[-1]), _KIND[loss]
    table = {
        "vector": {"28": "lenet28", "32": "lenet32", "large": "resnet18", "other": "lenet32"},
        "ae": {"28": "ae28", "32": "ae32", "large": "ae_bergmann", "other": "ae_bergmann"},
        "unet": {"28": "unet28", "32": "unet32", "large": "unet_bergmann", "other": "unet_bergmann"},
        "fcdd": {"28": "fcdd_small", "32": "fcdd_small", "large": "fcdd_vgg11", "other": "fcdd_small"},
    }
    return table[kind][fam]


def build_net(name: str, in_shape: tuple[int, int, int], *, bias: bool = True, rep_dim: int | None = None,
              latent_dim: int = 100, gauss_std: float | None = None, weights=None) -> nn.Module:
    """Construct network ``name`` for inputs ``in_shape`` ``(C, H, W)`` (untrained, seeded by the caller)."""
    if name not in NETS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETS)}")
    if len(in_shape) != 3 or min(in_shape) < 1:
        raise ValueError(f"in_shape must be (C, H, W) with positive sizes, got {in_shape!r}")
    if name in LENET_PRESETS:
        kw = dict(LENET_PRESETS[name])
        if rep_dim is not None:
            kw["rep_dim"] = rep_dim
        return LeNet(in_shape, bias=bias, **kw)
    if name == "resnet18":
        return ResNet18(in_shape, rep_dim=rep_dim or 256, bias=bias)
    if in_shape[1] != in_shape[2] and name not in FCDD_CFGS:
        raise ValueError(f"network {name} needs square inputs, got {in_shape[1]}×{in_shape[2]}")
    if name in AE_NETS:
        return ConvAutoencoder(in_shape, encoder_spec(name, in_shape[1], latent_dim))
    if name in UNET_NETS:
        return UNet(in_shape, encoder_spec(name.replace("unet", "ae", 1), in_shape[1], latent_dim))
    return FCDDNet(in_shape, name, gauss_std=gauss_std, weights=weights)


def count_bias(net: nn.Module) -> int:
    """Number of bias parameters plus affine batch-norm layers in ``net`` (0 for SVDD networks)."""
    n = sum(1 for name, p in net.named_parameters() if name.endswith("bias"))
    return n + sum(1 for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine)
