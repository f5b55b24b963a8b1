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
* :func:`simple_images` — the "simpler" out-of-distribution images of Nalisnick et al. (2019a):
  scikit-learn's digits laid out like MNIST, constant and smooth images; :func:`ood_sources` draws
  chapter 08's test sets (Fashion-MNIST test images and six out-of-distribution sources).
* :func:`detection_table` and :func:`statistic_verdicts` — the AUROC of each statistic on each
  source (test images 0, source 1) and the verdicts the chapter draws from them.

:func:`fit_density` trains with Adam and caches the model under ``cache_dir()/models``, keyed by
the whole :class:`DensityConfig`, a fingerprint of the training tensor and :data:`CACHE_VERSION`
(as :mod:`calad_lib.train` does); an unreadable or mismatched file is reported in one line and
retrained.
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

from .detector import AnomalyModel, Outputs
from .device import get_device, seed_everything
from .paths import cache_dir
from .provenance import code_fingerprint
from .store import config_key
from .model_cache import fingerprint, load_model, save_model

__all__ = ["MaskedConv2d", "PixelCNN", "DensityConfig", "fit_density", "load_cached", "cache_path",
           "log_prob", "discretized_logistic_logp", "quantize", "perturb", "typicality", "likelihood_ratio",
           "DensityDetector", "STATISTICS", "simple_images", "SIMPLE_KINDS", "CACHE_VERSION", "IN_DISTRIBUTION",
           "SOURCE_KEYS", "ood_sources", "bits_per_dim", "detection_table", "statistic_verdicts",
           "statistic_key"]

#: bump when a change to the network or the trainer makes cached density models stale
CACHE_VERSION = 1
#: statistics a :class:`DensityDetector` computes
STATISTICS = ("likelihood", "typicality", "ratio")
#: kinds :func:`simple_images` draws
SIMPLE_KINDS = ("digits", "constant", "smooth")
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
    return {"version": CACHE_VERSION, "code": code_fingerprint("calad_lib.density"), "config": dataclasses.asdict(cfg),
            "data": fingerprint(x)}


def cache_path(cfg: DensityConfig, x: torch.Tensor) -> Path:
    """Where the model of ``cfg`` trained on images ``x`` is cached."""
    return cache_dir() / "models" / f"pixelcnn_{config_key(_identity(cfg, x))}.pt"


def _check_images(x) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] < 1 or x.shape[1] != 1 or not x.is_floating_point():
        raise ValueError(f"training images must be a float tensor (N, 1, H, W) in [0, 1], got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    lo, hi = torch.aminmax(x.detach())
    if lo < 0 or hi > 1:
        raise ValueError(f"training images must lie in [0, 1], got values in [{float(lo):.3g}, {float(hi):.3g}]")


def _load(path: Path, ident: dict, cfg: DensityConfig, shape, device) -> PixelCNN | None:
    return load_model(path, ident, lambda payload: cfg.build(shape), device, what="cached density model")


def _save(path: Path, model, ident: dict) -> None:
    save_model(path, model, ident)


def perturb(k: torch.Tensor, rate: float, levels: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each level of ``k`` by a uniform random level with probability ``rate`` (Ren et al., 2019, §3)."""
    if rate <= 0:
        return k
    hit = torch.rand(k.shape, generator=generator, device=generator.device) < rate
    noise = torch.randint(levels, k.shape, generator=generator, device=generator.device).to(k.dtype)
    return torch.where(hit.to(k.device), noise.to(k.device), k)


def _fit(cfg: DensityConfig, x: torch.Tensor, device, progress: bool) -> PixelCNN:
    from .progress import bar as progress_bar

    g = seed_everything(cfg.seed)
    g_mut = torch.Generator().manual_seed(cfg.seed + 1)
    model = cfg.build(x.shape[1:]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    xd = x.to(device=device, dtype=torch.float32)
    scale = 1.0 / (model.dims * math.log(2.0))
    model.train()
    bar = progress_bar(range(cfg.epochs), desc=f"pixelcnn μ={cfg.mutation_rate} blocks={cfg.blocks}", disable=not progress,
               leave=False)
    for _ in bar:
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
            bar.set_postfix(bpd=f"{total / count:.3f}")
    return model.eval()


def load_cached(cfg: DensityConfig, x: torch.Tensor, *, device=None) -> PixelCNN | None:
    """The cached model of ``cfg`` trained on ``x`` (eval mode), or ``None``."""
    _check_images(x)
    ident = _identity(cfg, x)
    return _load(cache_path(cfg, x), ident, cfg, x.shape[1:], get_device(device))


def fit_density(cfg: DensityConfig, x: torch.Tensor, *, progress: bool = True, device=None,
                cache: bool = True) -> PixelCNN:
    """Train (or load from the cache) the :class:`PixelCNN` of ``cfg`` on images ``x`` ``(N, 1, H, W)`` in [0, 1].

    Adam (``cfg.lr``, cosine decay to 0 over all steps) on the mean negative log-likelihood
    in bits per dimension; batches in a seeded random order. Returns the model in eval mode.
    """
    if not isinstance(cfg, DensityConfig):
        raise ValueError(f"cfg must be a calad.density.DensityConfig, got {type(cfg).__name__}")
    _check_images(x)
    dev = get_device(device)
    ident = _identity(cfg, x)
    path = cache_path(cfg, x)
    if cache:
        model = _load(path, ident, cfg, x.shape[1:], dev)
        if model is not None:
            return model
    model = _fit(cfg, x, dev, progress)
    if cache:
        _save(path, model, ident)
    return model


@torch.no_grad()
def log_prob(model: PixelCNN, x: torch.Tensor, *, batch_size: int = 500, progress: bool = False) -> np.ndarray:
    """``log p(x)`` in nats for every image of ``x`` (batched, float64 array)."""
    from .progress import bar as progress_bar

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


# --- simple out-of-distribution images ---------------------------------------------------------
def _digits(n: int, size: int, g: np.random.Generator) -> torch.Tensor:
    from sklearn.datasets import load_digits

    d = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0).unsqueeze(1)   # 1797 × 1 × 8 × 8
    pick = torch.from_numpy(g.choice(len(d), size=n, replace=n > len(d)))
    inner = int(round(size * 20 / 28))                                                  # MNIST: 20×20 in 28×28
    x = F.interpolate(d[pick], size=(inner, inner), mode="bilinear", align_corners=False)
    lo = (size - inner) // 2
    return F.pad(x, (lo, size - inner - lo, lo, size - inner - lo))


def _smooth(n: int, size: int, g: np.random.Generator, sigma: float) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter

    noise = g.random((n, size, size))
    x = gaussian_filter(noise, sigma=(0, sigma, sigma), mode="wrap")
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    return torch.from_numpy(((x - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)).unsqueeze(1)


def simple_images(kind: str, n: int, size: int = 28, seed: int = 0, *, sigma: float = 3.0) -> torch.Tensor:
    """``n`` simple out-of-distribution images ``float32 (n, 1, size, size)`` in [0, 1] (Nalisnick et al., 2019a).

    * ``"digits"`` — scikit-learn's 8×8 digits (0–16) scaled to [0, 1], resized bilinearly to
      20×20 and centred in 28×28 (MNIST's layout; other sizes scale the box), drawn with replacement
      only if ``n`` exceeds the 1,797 images;
    * ``"constant"`` — one grey level per image, uniform in [0, 1];
    * ``"smooth"`` — uniform noise blurred by a Gaussian of ``sigma`` pixels (periodic borders) and
      stretched to [0, 1] per image.
    """
    if kind not in SIMPLE_KINDS:
        raise ValueError(f"unknown simple image kind {kind!r}; choose one of {', '.join(SIMPLE_KINDS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 or size < 8:
        raise ValueError(f"need an integer n >= 0 and size >= 8, got n={n!r}, size={size!r}")
    g = np.random.default_rng(int(seed))
    if kind == "digits":
        x = _digits(int(n), int(size), g)
    elif kind == "constant":
        x = torch.from_numpy(g.random(int(n)).astype(np.float32)).view(-1, 1, 1, 1).expand(-1, 1, size, size)
    else:
        x = _smooth(int(n), int(size), g, float(sigma))
    return x.clamp(0, 1).contiguous()


# --- chapter 08, part A: the test sets and what the statistics make of them ----------------------
#: the in-distribution test set of :func:`ood_sources`
IN_DISTRIBUTION = "Fashion-MNIST test"
#: record-friendly keys of the sources of :func:`ood_sources`
SOURCE_KEYS = {"Fashion-MNIST test": "fashion_mnist_test", "digits (sklearn)": "digits", "constant": "constant",
               "smooth": "smooth", "spectral": "spectral", "uniform noise": "uniform_noise",
               "OE photos (test)": "oe_photos"}


def ood_sources(test_images: torch.Tensor, n: int, *, seed: int = 0,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``n`` images of each test source, float32 ``(n, 1, 28, 28)`` in [0, 1], by name.

    :data:`IN_DISTRIBUTION`: a random draw (``generator``, else seeded by ``seed``) of
    ``test_images``; then scikit-learn's digits, constant, smooth (:func:`simple_images`),
    spectral images and uniform noise (thesis §3.4), and the test part of the OE photographs.
    """
    from .synthesis import oe_images, spectral, uniform_noise

    g = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    kw = dict(channels=1, size=28, seed=seed, device="cpu")
    return {
        IN_DISTRIBUTION: test_images[torch.randperm(len(test_images), generator=g)[:n]],
        "digits (sklearn)": simple_images("digits", n, seed=seed),
        "constant": simple_images("constant", n, seed=seed),
        "smooth": simple_images("smooth", n, seed=seed),
        "spectral": spectral(n, **kw),
        "uniform noise": uniform_noise(n, **kw),
        "OE photos (test)": oe_images(n, part="test", **kw),
    }


def bits_per_dim(logp, dims: int = 28 * 28) -> np.ndarray:
    """``−log₂ p(x) / D`` from ``log p(x)`` in nats."""
    return -np.asarray(logp, dtype=np.float64) / (dims * math.log(2))


def statistic_key(label: str) -> str:
    """A record-friendly key of a statistic label: ``"ratio (perturbed bg)"`` → ``"ratio_perturbed_bg"``."""
    return "_".join(label.replace("(", " ").replace(")", " ").split())


def detection_table(logp: dict, train_logp, *, in_dist: str = IN_DISTRIBUTION, model: str = "model",
                    dims: int = 28 * 28) -> "pd.DataFrame":
    """Per out-of-distribution source: bits/dim, share above the test median and the AUROC of each statistic.

    ``logp[name][source]`` holds ``log p`` under the model ``model`` and each background ``name``;
    ``train_logp`` the model's log-likelihoods of training images (for typicality). Statistics,
    oriented so that larger means more anomalous: ``likelihood`` (``−log p``), ``typicality``
    (``−φ_typical``) and ``ratio (<background>)`` (``log p_θ0 − log p_θ``, "background" shortened
    to "bg"). AUROC: test images 0, source images 1 (below 0.5: the source looks *more* normal).
    """
    import pandas as pd

    from .metrics import auroc

    lp = logp[model]
    stats = {"likelihood": lambda s: -lp[s], "typicality": lambda s: -typicality(lp[s], train_logp)}
    for name in logp:
        if name != model:
            stats[f"ratio ({name.replace('background', 'bg').strip()})"] = \
                (lambda s, b=name: -likelihood_ratio(lp[s], logp[b][s]))
    rows = {}
    median = np.median(lp[in_dist])
    for s in lp:
        if s == in_dist:
            continue
        y = np.r_[np.zeros(len(lp[in_dist])), np.ones(len(lp[s]))]
        rows[s] = {"bits/dim": float(bits_per_dim(lp[s], dims).mean()),
                   "above test median": float((lp[s] > median).mean()),
                   **{k: auroc(y, np.r_[f(in_dist), f(s)]) for k, f in stats.items()}}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "source"
    return out


def statistic_verdicts(table: "pd.DataFrame", *, worse_by: float = 0.05) -> "pd.DataFrame":
    """The claims of part A, decided from :func:`detection_table`.

    A1: the likelihood ranks some source above the test data (AUROC < 0.5; Nalisnick et al.).
    Then, per remedy: how many of the failing sources it rescues (AUROC > 0.5) and on which
    sources it is clearly worse than the likelihood (by more than ``worse_by``). A remedy
    *holds* when it rescues every failing source and is clearly worse nowhere, *fails* when it
    rescues none (or there is nothing to rescue and it is worse somewhere), else is *mixed*.
    Columns ``key`` (``"a1"`` or :func:`statistic_key`), ``claim``, ``verdict``, ``detail`` and the
    margins ``count``, ``of``, ``mean_auroc``.
    """
    import pandas as pd

    lik = table["likelihood"]
    fails = lik.index[lik < 0.5].tolist()
    rows = [{"key": "a1", "claim": "A1 the likelihood ranks a simpler source above its own test images",
             "verdict": (f"holds: {len(fails)} of {len(table)} sources" if fails
                         else f"not reproduced at this scale: 0 of {len(table)} sources"),
             "detail": (", ".join(f"{s} (AUROC {lik[s]:.2f})" for s in fails) or
                        f"lowest AUROC {lik.min():.2f}"),
             "count": len(fails), "of": len(table), "mean_auroc": float(lik.mean())}]
    for k in [c for c in table.columns if c not in ("bits/dim", "above test median", "likelihood")]:
        fixed = [s for s in fails if table.loc[s, k] > 0.5]
        worse = table.index[table[k] < lik - worse_by].tolist()
        if fails and len(fixed) == len(fails) and not worse:
            v = "holds"
        elif (fails and not fixed) or (not fails and worse):
            v = "fails"
        elif not fails:
            v = "holds"
        else:
            v = "mixed"
        rows.append({"key": statistic_key(k), "claim": f"A {k} rescues the likelihood's failures and loses nowhere",
                     "verdict": f"{v}: rescues {len(fixed)} of {len(fails)}",
                     "detail": (f"mean AUROC {table[k].mean():.2f} (likelihood {lik.mean():.2f}); clearly worse on "
                                f"{', '.join(worse) or 'no source'}"),
                     "count": len(fixed), "of": len(fails), "mean_auroc": float(table[k].mean())})
    return pd.DataFrame(rows)
