"""An exact-likelihood image model and the test statistics built on it (OE-uncertainty seeds 003, 004).

* :class:`PixelCNN` — an autoregressive model of grayscale images with masked convolutions
  (van den Oord et al., 2016: a 7×7 type-A layer, residual blocks of 3×3 type-B layers, 1×1
  output layers) and, per pixel, a mixture of ``K`` *discretised logistics* over ``L`` intensity
  levels (Salimans et al., 2017, PixelCNN++ §2.1, edge bins extended to ±∞). Each conditional
  sums to one over the ``L`` levels, so ``log p(x)`` is an exact, normalised log-probability of
  the quantised image; :meth:`PixelCNN.bits_per_dim` reports ``−log₂ p(x) / D``.
* :func:`typicality` — ``φ_typical(x) = −|log p(x) − (1/n) Σ_{x'∈D_tr} log p(x')|`` (Nalisnick et
  al., 2019b; the statistic of the talk, seed 004).
* :func:`likelihood_ratio` — ``log p_θ(x) − log p_θ0(x)`` against a background model ``θ0``:
  the same network trained on inputs whose pixels are replaced by uniform random levels with
  probability ``μ`` (Ren et al., 2019, §3; ``mutation_rate``), or a model that sees only a small
  neighbourhood of each pixel (``blocks=0``: local pixel statistics, the "low-complexity"
  background of Schirrmeister et al., 2020).
* :class:`DensityDetector` — one of these statistics as a calad
  :class:`~calad_lib.detector.AnomalyModel` (score = −statistic in nats per dimension; like SVDD
  in thesis §4.1.1, the logit is the score and ``η̂ = σ(score)``).

:func:`fit_density` trains with Adam and keeps the model in the one model cache
(:func:`calad_lib.runs.cached_fit`), keyed by the whole :class:`DensityConfig`, a fingerprint of the
training tensor, :data:`CACHE_VERSION` and the code; an unreadable or mismatched file is reported in
one line and retrained.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..detector import AnomalyModel, Outputs
from ..device import get_device, seed_everything
from ..progress import Epochs
from ..progress import bar as progress_bar
from ..provenance import code_fingerprint
from ..runs import cached_fit, fingerprint, load_model, model_path

__all__ = ["MaskedConv2d", "PixelCNN", "DensityConfig", "fit_density", "load_cached", "cache_path",
           "log_prob", "discretized_logistic_logp", "quantize", "perturb", "typicality", "likelihood_ratio",
           "DensityDetector", "STATISTICS", "CACHE_VERSION"]

#: bump when a change to the network or the trainer makes cached density models stale
CACHE_VERSION = 1
#: statistics a :class:`DensityDetector` computes
STATISTICS = ("likelihood", "typicality", "ratio")
#: kinds :func:`simple_images` draws
_LOG_SCALE_MIN = -7.0


# --- the model ----------------------------------------------------------------------------
class MaskedConv2d(nn.Conv2d):
    """A square convolution that sees only pixels above, and left of, the centre (raster order).

    ``mask_type="A"`` also hides the centre pixel (first layer: pixel i never sees itself);
    ``"B"`` lets it through (later layers: the centre holds features of pixels < i only).
    Single-channel images only (no colour-channel ordering).
    """

    def __init__(self, cin: int, cout: int, kernel: int, mask_type: str):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"masked convolutions need an odd kernel size, got {kernel}")
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        mask = torch.ones_like(self.weight)
        c = kernel // 2
        mask[:, :, c, c + (mask_type == "B"):] = 0
        mask[:, :, c + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class _Residual(nn.Module):
    """PixelCNN residual block: 1×1 (2h → h), masked 3×3 type B (h → h), 1×1 (h → 2h), ReLUs between."""

    def __init__(self, filters: int):
        super().__init__()
        h = max(filters // 2, 1)
        self.a, self.b, self.c = nn.Conv2d(filters, h, 1), MaskedConv2d(h, h, 3, "B"), nn.Conv2d(h, filters, 1)

    def forward(self, x):
        return x + self.c(F.relu(self.b(F.relu(self.a(F.relu(x))))))


def quantize(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer levels ``round(x·(L − 1))`` in ``{0, …, L − 1}`` of raw images ``x`` in [0, 1] (float tensor)."""
    return torch.round(x.clamp(0, 1) * (levels - 1))


def discretized_logistic_logp(k: torch.Tensor, params: torch.Tensor, levels: int) -> torch.Tensor:
    """Per-pixel ``log P(k)`` under a mixture of discretised logistics (PixelCNN++ §2.1).

    ``k``: integer levels ``(N, H, W)`` (as floats); ``params``: ``(N, 3K, H, W)`` = mixture
    logits, means and log-scales on the [−1, 1] scale. Level ``k`` is the bin
    ``[c − δ, c + δ]`` around ``c = 2k/(L − 1) − 1`` with ``δ = 1/(L − 1)``; the first and the last
    bin extend to −∞ and +∞, so the ``L`` probabilities sum to one. ``σ(a) − σ(b)`` is computed as
    ``σ(a)·σ(−b)·(1 − e^{b−a})`` in log space (exact, no fallback).
    """
    n_mix = params.shape[1] // 3
    logit_pi, mu, log_s = params[:, :n_mix], params[:, n_mix:2 * n_mix], params[:, 2 * n_mix:]
    log_s = log_s.clamp_min(_LOG_SCALE_MIN)
    inv_s = torch.exp(-log_s)
    delta = 1.0 / (levels - 1)
    c = (2.0 * delta * k - 1.0).unsqueeze(1)                     # (N, 1, H, W)
    a = (c + delta - mu) * inv_s                                 # upper edge
    b = (c - delta - mu) * inv_s                                 # lower edge
    first, last = (k == 0).unsqueeze(1), (k == levels - 1).unsqueeze(1)
    mid = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(-2.0 * delta * inv_s))
    logp = torch.where(first, F.logsigmoid(a), torch.where(last, F.logsigmoid(-b), mid))
    return torch.logsumexp(F.log_softmax(logit_pi, dim=1) + logp, dim=1)


class PixelCNN(nn.Module):
    """Autoregressive model ``p(x) = Π_i p(x_i | x_<i)`` of single-channel images (raster order).

    Parameters: ``shape`` ``(1, H, W)``; ``levels`` ``L`` (256 for 8-bit images); ``n_mix`` mixture
    components; ``filters`` channels; ``blocks`` residual blocks (0: only the first masked layer,
    a model of local pixel statistics); ``first_kernel`` size of the type-A layer.
    """

    def __init__(self, shape=(1, 28, 28), levels: int = 256, n_mix: int = 5, filters: int = 64, blocks: int = 4,
                 first_kernel: int = 7):
        super().__init__()
        shape = tuple(int(v) for v in shape)
        if len(shape) != 3 or shape[0] != 1 or min(shape) < 1:
            raise ValueError(f"PixelCNN models single-channel images (1, H, W), got shape {shape}; "
                             "convert to grayscale first")
        for name, v, lo in (("levels", levels, 2), ("n_mix", n_mix, 1), ("filters", filters, 2), ("blocks", blocks, 0)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        self.shape, self.levels, self.n_mix = shape, int(levels), int(n_mix)
        self.spec = {"shape": list(shape), "levels": int(levels), "n_mix": int(n_mix), "filters": int(filters),
                     "blocks": int(blocks), "first_kernel": int(first_kernel)}
        self.first = MaskedConv2d(1, filters, first_kernel, "A")
        self.blocks = nn.Sequential(*[_Residual(filters) for _ in range(blocks)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(filters, filters, 1), nn.ReLU(), nn.Conv2d(filters, 3 * n_mix, 1))

    @property
    def dims(self) -> int:
        return math.prod(self.shape)

    def _levels(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"PixelCNN expects images (N, {', '.join(map(str, self.shape))}) in [0, 1], "
                             f"got shape {tuple(x.shape)}")
        return quantize(x, self.levels)

    def pixel_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_i | x_<i)`` per pixel, ``(N, H, W)``, of raw images ``x`` in [0, 1] (quantised to ``L`` levels)."""
        k = self._levels(x)
        h = self.first(2.0 * k / (self.levels - 1) - 1.0)
        return discretized_logistic_logp(k[:, 0], self.out(self.blocks(h)), self.levels)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` in nats, ``(N,)``."""
        return self.pixel_log_prob(x).flatten(1).sum(1)

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """``−log₂ p(x) / D`` per image, ``(N,)``."""
        return -self.log_prob(x) / (self.dims * math.log(2.0))

    def forward(self, x):
        return self.log_prob(x)


# --- training and the cache ------------------------------------------------------------------
@dataclass(frozen=True)
class DensityConfig:
    """Everything that determines a trained :class:`PixelCNN` (validated on construction).

    ``mutation_rate`` ``μ``: each training pixel is replaced by a uniform random level with
    probability ``μ`` (fresh every batch) — Ren et al.'s background model; 0 for the model itself.
    ``weight_decay`` is L2 regularisation (Ren et al. also use it for the background model).
    """

    levels: int = 256
    n_mix: int = 5
    filters: int = 64
    blocks: int = 4
    first_kernel: int = 7
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    mutation_rate: float = 0.0
    seed: int = 0
    data: str = "fashion_mnist"

    def __post_init__(self):
        for name in ("levels", "n_mix", "filters", "blocks", "first_kernel", "epochs", "batch_size", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if self.levels < 2 or self.n_mix < 1 or self.filters < 2 or self.blocks < 0 or self.epochs < 1 \
                or self.batch_size < 1 or self.first_kernel < 1 or self.first_kernel % 2 == 0:
            raise ValueError(f"need levels >= 2, n_mix >= 1, filters >= 2, blocks >= 0, epochs >= 1, batch_size >= 1 "
                             f"and an odd first_kernel; got {self}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"lr must lie in (0, 1), got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.mutation_rate, (int, float)) and 0 <= self.mutation_rate < 1):
            raise ValueError(f"mutation_rate must lie in [0, 1), got {self.mutation_rate!r}")

    def build(self, shape) -> PixelCNN:
        return PixelCNN(shape, self.levels, self.n_mix, self.filters, self.blocks, self.first_kernel)


def _identity(cfg: DensityConfig, x: torch.Tensor) -> dict:
    return {"version": CACHE_VERSION, "code": code_fingerprint("calad_lib.uncertainty.density"),
            "config": dataclasses.asdict(cfg), "data": fingerprint(x)}


def cache_path(cfg: DensityConfig, x: torch.Tensor) -> Path:
    """Where the model of ``cfg`` trained on images ``x`` is cached."""
    return model_path("pixelcnn", _identity(cfg, x))


def _check_images(x) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] < 1 or x.shape[1] != 1 or not x.is_floating_point():
        raise ValueError(f"training images must be a float tensor (N, 1, H, W) in [0, 1], got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    lo, hi = torch.aminmax(x.detach())
    if lo < 0 or hi > 1:
        raise ValueError(f"training images must lie in [0, 1], got values in [{float(lo):.3g}, {float(hi):.3g}]")


def perturb(k: torch.Tensor, rate: float, levels: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each level of ``k`` by a uniform random level with probability ``rate`` (Ren et al., 2019, §3)."""
    if rate <= 0:
        return k
    hit = torch.rand(k.shape, generator=generator, device=generator.device) < rate
    noise = torch.randint(levels, k.shape, generator=generator, device=generator.device).to(k.dtype)
    return torch.where(hit.to(k.device), noise.to(k.device), k)


def _fit(cfg: DensityConfig, x: torch.Tensor, device, progress: bool) -> PixelCNN:
    g = seed_everything(cfg.seed)
    g_mut = torch.Generator().manual_seed(cfg.seed + 1)
    model = cfg.build(x.shape[1:]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    xd = x.to(device=device, dtype=torch.float32)
    scale = 1.0 / (model.dims * math.log(2.0))
    model.train()
    loop = Epochs(cfg.epochs, desc=f"pixelcnn μ={cfg.mutation_rate} blocks={cfg.blocks}", progress=progress,
                  device=device)
    for _ in loop:
        order = torch.randperm(len(xd), generator=g).to(device)
        total, count = 0.0, 0
        for s in range(0, len(xd), cfg.batch_size):
            xb = xd[order[s:s + cfg.batch_size]]
            if cfg.mutation_rate > 0:
                k = perturb(quantize(xb, cfg.levels).cpu(), cfg.mutation_rate, cfg.levels, g_mut).to(device)
                xb = k / (cfg.levels - 1)
            loss = -model.log_prob(xb).mean() * scale                    # bits per dimension
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
        if progress:
            loop.show(bpd=f"{total / count:.3f}")
    model.fit_info = {"epoch_seconds": loop.seconds, "images_per_epoch": len(x)}
    return model.eval()


def load_cached(cfg: DensityConfig, x: torch.Tensor, *, device=None) -> PixelCNN | None:
    """The cached model of ``cfg`` trained on ``x`` (eval mode), or ``None``."""
    _check_images(x)
    return load_model(cache_path(cfg, x), _identity(cfg, x), lambda payload: cfg.build(x.shape[1:]),
                      get_device(device), what="cached density model")


def fit_density(cfg: DensityConfig, x: torch.Tensor, *, progress: bool = True, device=None,
                cache: bool = True) -> PixelCNN:
    """Train (or load from the cache) the :class:`PixelCNN` of ``cfg`` on images ``x`` ``(N, 1, H, W)`` in [0, 1].

    Adam (``cfg.lr``, cosine decay to 0 over all steps) on the mean negative log-likelihood
    in bits per dimension; batches in a seeded random order. Returns the model in eval mode.
    """
    if not isinstance(cfg, DensityConfig):
        raise ValueError(f"cfg must be a calad.uncertainty.DensityConfig, got {type(cfg).__name__}")
    _check_images(x)
    dev = get_device(device)
    return cached_fit("pixelcnn", _identity(cfg, x), lambda payload: cfg.build(x.shape[1:]),
                      lambda: _fit(cfg, x, dev, progress), device=dev, cache=cache, what="cached density model")


@torch.no_grad()
def log_prob(model: PixelCNN, x: torch.Tensor, *, batch_size: int = 500, progress: bool = False) -> np.ndarray:
    """``log p(x)`` in nats for every image of ``x`` (batched, float64 array)."""
    dev = next(model.parameters()).device
    out = [model.log_prob(x[s:s + batch_size].to(dev)).double().cpu()
           for s in progress_bar(range(0, len(x), batch_size), disable=not progress, leave=False, desc="log p(x)")]
    return torch.cat(out).numpy() if out else np.zeros(0)


# --- test statistics --------------------------------------------------------------------------
def typicality(logp, train_logp) -> np.ndarray:
    """``φ_typical(x) = −|log p(x) − mean(log p(D_tr))|`` (larger = more typical; seed 004, Nalisnick et al. 2019b)."""
    logp, train_logp = np.asarray(logp, dtype=np.float64), np.asarray(train_logp, dtype=np.float64)
    if train_logp.size == 0 or not np.isfinite(train_logp).all():
        raise ValueError("train_logp must be a non-empty array of finite training log-likelihoods")
    return -np.abs(logp - train_logp.mean())


def likelihood_ratio(logp, logp_background) -> np.ndarray:
    """``LLR(x) = log p_θ(x) − log p_θ0(x)`` (larger = more normal; Ren et al., 2019, eq. 5)."""
    logp, logp_background = np.asarray(logp, dtype=np.float64), np.asarray(logp_background, dtype=np.float64)
    if logp.shape != logp_background.shape:
        raise ValueError(f"log p and background log p must have the same shape, got {logp.shape} and "
                         f"{logp_background.shape}")
    return logp - logp_background


class DensityDetector(AnomalyModel):
    """A likelihood-based test statistic as an :class:`~calad_lib.detector.AnomalyModel`.

    ``statistic``: ``"likelihood"`` (score ``−log p(x)/D``), ``"typicality"`` (``|log p(x) − m|/D``
    with ``m`` the mean training log-likelihood, given as ``train_mean``) or ``"ratio"``
    (``(log p_θ0(x) − log p_θ(x))/D`` with ``background``). Scores are in nats per dimension,
    larger = more anomalous; ``logit = score`` and ``η̂ = σ(score)`` by the thesis' SVDD convention
    (§4.1.1) — uncalibrated until post-hoc calibration fits a map. ``loss`` is the negative
    log-likelihood per dimension.
    """

    def __init__(self, model: PixelCNN, statistic: str = "likelihood", *, train_mean: float | None = None,
                 background: PixelCNN | None = None):
        super().__init__()
        if statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
        if statistic == "typicality" and train_mean is None:
            raise ValueError("the typicality statistic needs train_mean, the mean log p of the training data")
        if statistic == "ratio" and background is None:
            raise ValueError("the likelihood ratio needs a background PixelCNN (background=...)")
        self.model, self.background, self.statistic = model, background, statistic
        self.train_mean = None if train_mean is None else float(train_mean)
        self.name = f"{statistic}[pixelcnn]"

    def outputs(self, x):
        d = self.model.dims
        lp = self.model.log_prob(x)
        if self.statistic == "likelihood":
            s = -lp / d
        elif self.statistic == "typicality":
            s = (lp - self.train_mean).abs() / d
        else:
            s = (self.background.log_prob(x) - lp) / d
        return Outputs(s, torch.sigmoid(s), s)

    def loss(self, x, y=None):
        return -self.model.log_prob(x) / self.model.dims
