"""Post-hoc calibration of a frozen anomaly model (thesis §3.2, §4.2.1).

Three calibrators, each a small scikit-learn-like object fitted on the **logistic loss**
(eq. 2.15) with labels 0 = normal, 1 = (synthetic) anomalous:

* :class:`PlattScaling` (§3.2.1, eq. 3.1): ``z_P = z / T + c``, parameters ``a_ = 1/T`` and ``c_``.
* :class:`BetaCalibration` (§3.2.2, eq. 3.2): ``z_β = a ln η̂ − b ln(1 − η̂) + c`` with ``a, b ≥ 0``.
  ``variant="stable"`` reads ``ln η̂ = logsigmoid(z)`` and ``ln(1 − η̂) = logsigmoid(−z)`` from the
  logit, so nothing is lost for overconfident models; ``variant="naive"`` materialises
  ``η̂ = σ(z)`` in float32 and clips it to ``[ε, 1 − ε]`` (ε the float32 machine epsilon, as
  ``betacal`` does) before taking logs, which saturates for ``|z| ≳ 16`` — the numerical
  instability of §4.3.1.
* :class:`CalibrationHead` (§3.2.3): a fresh ``Linear(d, 1)`` on the frozen model's
  :meth:`~calad_lib.detector.AnomalyModel.head_features`, trained with Adam.

Platt and Beta are fitted with L-BFGS(-B) (SciPy, bounds ``a, b ≥ 0`` for Beta) to the exact
minimiser of the mean logistic loss. Given maps ``(N, H, W)`` they are the *per-pixel* versions:
one transform for every pixel, fitted on the average per-pixel logistic loss (Proposition 1;
all maps have the same size, so this is the mean over all pixels). The thesis fitted the
per-pixel versions with Adam; the convex objective is the same, L-BFGS just reaches its
minimiser exactly.

:func:`calibrate` composes a base model and a calibrator into a :class:`CalibratedModel`, itself an
:class:`~calad_lib.detector.AnomalyModel` whose logit is the calibrated logit and whose loss is
the logistic loss of that logit — so gradient input perturbation (§3.3) differentiates through
the calibrator and the frozen base.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from torch import nn
from .progress import bar as progress_bar

from .detector import AnomalyModel, Outputs

__all__ = ["PlattScaling", "BetaCalibration", "CalibrationHead", "CalibratedModel", "calibrate", "calibrate_many",
           "resolve_augment", "METHODS", "logistic_loss"]

#: names accepted by :func:`calibrate`
METHODS = ("platt", "beta", "beta_naive", "head")
_F32_EPS = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------------------------------------
# helpers
def _to_tensor(a, dtype=torch.float64, device=None) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to(dtype=dtype, device=device if device is not None else a.device)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _labels_like(z: torch.Tensor, y, what: str = "z") -> torch.Tensor:
    """Labels broadcast to the shape of ``z`` (per-image labels of maps are spread over pixels)."""
    y = _to_tensor(y, dtype=torch.float64, device=z.device)
    if y.shape != z.shape:
        if y.ndim == 1 and z.ndim > 1 and y.shape[0] == z.shape[0]:
            y = y.view(-1, *([1] * (z.ndim - 1))).expand_as(z)
        else:
            raise ValueError(f"labels of shape {tuple(y.shape)} do not match {what} of shape {tuple(z.shape)}; "
                             "give one label per value or one per image")
    if not torch.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    if y.numel() and (y.min() == y.max()):
        raise ValueError("calibration needs both normal (0) and anomalous (1) examples; only one class was given")
    return y


def _check_finite(z: torch.Tensor, what: str) -> None:
    if z.numel() == 0:
        raise ValueError(f"{what} is empty; calibration needs data")
    if not torch.isfinite(z).all():
        raise ValueError(f"{what} contains NaN or infinite values; check the base model's outputs")


def logistic_loss(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise logistic loss (eq. 2.15) ``y ln(1 + e^{−z}) + (1 − y) ln(1 + e^{z})``, computed stably."""
    return F.binary_cross_entropy_with_logits(logit, y.to(logit.dtype).expand_as(logit), reduction="none")


def _fit_logistic(X: torch.Tensor, y: torch.Tensor, nonneg: tuple[bool, ...], *, maxiter: int = 2000):
    """Minimise the mean logistic loss of ``X @ w + c`` over ``(w, c)`` with L-BFGS-B.

    ``nonneg[j]`` constrains ``w_j ≥ 0``. Features are centred and scaled by their standard
    deviation (a positive rescaling, so the bounds keep their meaning) for conditioning.
    A feature with no spread beyond rounding keeps ``w_j = 0``. Returns ``[w_1, ..., w_k, c]`` in
    the original feature units, SciPy's result and the mask of such constant features.
    """
    X = X.reshape(X.shape[0], -1) if X.ndim > 1 else X.reshape(-1, 1)
    mu = X.mean(0)
    sd = X.std(0)
    # a feature whose spread is at rounding level carries no information: its weight stays 0
    constant = sd <= 1e-10 * torch.clamp(mu.abs(), min=1.0)
    sd = torch.where(constant, torch.ones_like(sd), sd)
    Xs = torch.where(constant, torch.zeros_like(X), (X - mu) / sd)
    k = X.shape[1]
    yf = y.reshape(-1)

    def fun(theta: np.ndarray):
        t = torch.as_tensor(theta, dtype=torch.float64, device=X.device)
        s = Xs @ t[:k] + t[k]
        loss = (F.softplus(s) - yf * s).mean()
        r = (torch.sigmoid(s) - yf) / s.numel()
        grad = torch.cat([Xs.T @ r, r.sum().reshape(1)])
        return float(loss), grad.cpu().numpy()

    theta0 = np.zeros(k + 1)
    fixed = constant.cpu().numpy()
    theta0[:k] = np.where(fixed, 0.0, sd.cpu().numpy())  # unit weights: Platt's and β's identity z -> z
    bounds = [(0.0, 0.0) if f else (0.0, None) if nn_ else (None, None) for nn_, f in zip(nonneg, fixed)]
    bounds += [(None, None)]
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": maxiter, "ftol": 1e-14, "gtol": 1e-10, "maxcor": 20})
    w = res.x[:k] / sd.cpu().numpy()
    c = res.x[k] - float((torch.as_tensor(w, dtype=torch.float64, device=X.device) * mu).sum())
    return np.concatenate([w, [c]]), res, fixed


class _ScalarCalibrator:
    """Shared ``fit``/``transform``/``predict_proba`` for calibrators of the base logit ``z``."""

    fitted_: bool = False

    def _features(self, z: torch.Tensor) -> torch.Tensor:  # (...,) -> (..., k)
        raise NotImplementedError

    def _nonneg(self) -> tuple[bool, ...]:
        raise NotImplementedError

    def _set(self, theta: np.ndarray) -> None:
        raise NotImplementedError

    def _apply(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, z, y):
        """Fit on base logits ``z`` (shape ``(N,)`` or maps ``(N, H, W)``) and labels ``y`` (same shape or ``(N,)``)."""
        zt = _to_tensor(z, dtype=torch.float64)
        _check_finite(zt, "z")
        yt = _labels_like(zt, y)
        X = self._features(zt.reshape(-1))
        theta, res, constant = _fit_logistic(X, yt.reshape(-1), self._nonneg())
        self.degenerate_ = bool(constant.all())
        if self.degenerate_:
            warnings.warn(f"{type(self).__name__}: the calibration logits are constant, so only the base rate "
                          f"{float(yt.mean()):.3g} can be fitted; every input gets that probability", stacklevel=2)
        self._set(theta)
        self.n_iter_, self.converged_, self.loss_ = int(res.nit), bool(res.success), float(res.fun)
        self.fitted_ = True
        return self

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call .fit(z, y) first")

    def transform(self, z):
        """Calibrated logits of base logits ``z`` (a tensor stays a differentiable tensor; arrays give arrays)."""
        self._check_fitted()
        if isinstance(z, torch.Tensor):
            return self._apply(z)
        out = self._apply(torch.as_tensor(np.asarray(z, dtype=np.float64)))
        return out.numpy()

    def predict_proba(self, z):
        """Calibrated probability estimates ``σ(transform(z))``."""
        t = self.transform(z)
        return torch.sigmoid(t) if isinstance(t, torch.Tensor) else 1.0 / (1.0 + np.exp(-t))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params().items()) if self.fitted_ else "unfitted"
        return f"{type(self).__name__}({params})"


class PlattScaling(_ScalarCalibrator):
    """Platt scaling (§3.2.1, eq. 3.1): ``z_P = z / T + c = a z + c``.

    Fitted by L-BFGS on the mean logistic loss (unconstrained, like a one-feature logistic
    regression). Rankings are unchanged whenever ``a_ > 0``, i.e. whenever the base logit
    ranks calibration anomalies above normal data better than chance; a warning is raised otherwise.

    Attributes: ``a_`` (= 1/T), ``c_``, ``T_``.
    """

    name = "platt"

    def _features(self, z):
        return z.reshape(-1, 1)

    def _nonneg(self):
        return (False,)

    def _set(self, theta):
        self.a_, self.c_ = float(theta[0]), float(theta[1])
        if self.a_ <= 0 and not getattr(self, "degenerate_", False):
            warnings.warn(f"Platt scaling fitted a = {self.a_:.3g} <= 0: it reverses the base ranking "
                          "(the base logit does not separate the calibration data)", stacklevel=3)

    @classmethod
    def from_params(cls, a: float = 1.0, c: float = 0.0) -> "PlattScaling":
        """A Platt transform with given parameters (``a = 1/T``), e.g. to draw Figure 3.2."""
        cal = cls()
        cal.a_, cal.c_, cal.fitted_ = float(a), float(c), True
        return cal

    @property
    def T_(self) -> float:
        return 1.0 / self.a_ if self.a_ != 0 else math.inf

    def params(self) -> dict[str, float]:
        return {"a": self.a_, "c": self.c_}

    def _apply(self, z):
        return self.a_ * z + self.c_


class BetaCalibration(_ScalarCalibrator):
    """Beta calibration (§3.2.2, eq. 3.2): ``z_β = a ln η̂ − b ln(1 − η̂) + c`` with ``a, b ≥ 0``.

    Fitted by L-BFGS-B with the bounds ``a, b ≥ 0`` (betacal instead refits with one feature
    dropped when a coefficient comes out negative; both reach the constrained minimiser of
    this convex problem). Input is the base *logit* ``z`` in both variants:

    * ``"stable"``: ``ln η̂ = logsigmoid(z)``, ``−ln(1 − η̂) = softplus(z)``, in float64 —
      ``a = b`` gives exactly Platt's ``a z + c``.
    * ``"naive"``: ``η̂ = σ(z)`` in float32, clipped to ``[ε, 1 − ε]`` (float32 ε ≈ 1.19e-7),
      then logs — how a pipeline that hands float32 ``η̂`` to ``betacal`` behaves. Logits with
      ``|z| ≳ 15.9`` all collapse onto the clip value, so their ranking is lost (§4.3.1), and
      the clip also has zero gradient there.

    Attributes: ``a_``, ``b_``, ``c_``.
    """

    name = "beta"

    def __init__(self, variant: str = "stable"):
        if variant not in ("stable", "naive"):
            raise ValueError(f"unknown Beta calibration variant {variant!r}; choose 'stable' or 'naive'")
        self.variant = variant

    @classmethod
    def from_params(cls, a: float = 1.0, b: float = 1.0, c: float = 0.0, variant: str = "stable") -> "BetaCalibration":
        """A Beta transform with given parameters (``a, b ≥ 0``), e.g. to draw Figure 3.3."""
        if a < 0 or b < 0:
            raise ValueError(f"Beta calibration needs a, b >= 0; got a = {a}, b = {b}")
        cal = cls(variant)
        cal.a_, cal.b_, cal.c_, cal.fitted_ = float(a), float(b), float(c), True
        return cal

    def log_eta(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ln η̂, ln(1 − η̂))`` of logits ``z`` as this variant computes them."""
        if self.variant == "stable":
            return F.logsigmoid(z), F.logsigmoid(-z)
        eta = torch.sigmoid(z.to(torch.float32)).clamp(_F32_EPS, 1.0 - _F32_EPS)
        return torch.log(eta).to(z.dtype), torch.log(1.0 - eta).to(z.dtype)

    def _features(self, z):
        ln_eta, ln_1m = self.log_eta(z)
        return torch.stack([ln_eta, -ln_1m], dim=-1)

    def _nonneg(self):
        return (True, True)

    def _set(self, theta):
        self.a_, self.b_, self.c_ = (float(t) for t in theta)

    def params(self) -> dict[str, float]:
        return {"a": self.a_, "b": self.b_, "c": self.c_}

    def _apply(self, z):
        ln_eta, ln_1m = self.log_eta(z)
        return self.a_ * ln_eta - self.b_ * ln_1m + self.c_

    def __repr__(self) -> str:
        return super().__repr__().replace("(", f"[{self.variant}](", 1)


class CalibrationHead:
    """Calibration head (§3.2.3): a fresh ``Linear(d, 1)`` on frozen features, trained with Adam.

    The three rules of §3.2.3 (decapitate an autoencoder at the bottleneck; connect a vector
    output to one node; reset the final layer of a scalar-output network) all reduce to
    "a new linear layer on :meth:`~calad_lib.detector.AnomalyModel.head_features`", which
    each model defines accordingly. Training follows §4.2.1: Adam, learning rate ``lr``
    (1e-4), no weight decay, batches of ``batch_size`` balanced between normal and anomalous
    examples, learning rate divided by 10 at ``milestones`` (default: half and three
    quarters of the epochs, as 100 and 150 of 200).
    """

    def __init__(self, epochs: int = 200, lr: float = 1e-4, batch_size: int = 128, *,
                 milestones: tuple[int, ...] | None = None, seed: int = 0, device=None, progress: bool = False):
        if int(epochs) < 1:
            raise ValueError(f"epochs = {epochs} must be at least 1")
        if not lr > 0:
            raise ValueError(f"lr = {lr} must be positive")
        if int(batch_size) < 2:
            raise ValueError(f"batch_size = {batch_size} must be at least 2 (one normal and one anomalous example)")
        self.epochs, self.lr, self.batch_size = int(epochs), float(lr), int(batch_size)
        self.milestones = milestones
        self.seed, self.device, self.progress = seed, device, progress
        self.linear_: nn.Linear | None = None

    def fit(self, features, y):
        """Train the head on ``features`` (shape ``(N, d)``) with labels ``y`` (shape ``(N,)``)."""
        from .device import get_device

        X = _to_tensor(features, dtype=torch.float32, device=torch.device("cpu"))
        if X.ndim != 2:
            raise ValueError(f"features must have shape (N, d); got {tuple(X.shape)}")
        _check_finite(X, "features")
        yt = _labels_like(X[:, 0], y, "features").to(torch.float32)
        dev = get_device(self.device)
        g = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            lin = nn.Linear(X.shape[1], 1)
        lin = lin.to(dev)
        X, yt = X.to(dev), yt.to(dev)
        idx0 = torch.nonzero(yt == 0).squeeze(1).cpu()
        idx1 = torch.nonzero(yt == 1).squeeze(1).cpu()
        half = self.batch_size // 2
        n_batches = math.ceil(max(len(idx0), len(idx1)) / half)
        milestones = self.milestones if self.milestones is not None else (self.epochs // 2, (3 * self.epochs) // 4)
        opt = torch.optim.Adam(lin.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[m for m in milestones if 0 < m], gamma=0.1)
        self.losses_ = []
        threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)  # a (128, d) x (d, 1) step is far too small to share between threads
        try:
            self._epochs(lin, opt, sched, X, yt, idx0, idx1, half, n_batches, g, dev)
        finally:
            torch.set_num_threads(threads)
        self.linear_ = lin.eval().requires_grad_(False)
        return self

    def _epochs(self, lin, opt, sched, X, yt, idx0, idx1, half, n_batches, g, dev) -> None:
        for _ in progress_bar(range(self.epochs), desc="calibration head", disable=not self.progress, leave=False):
            p0 = idx0[torch.randperm(len(idx0), generator=g)]
            p1 = idx1[torch.randperm(len(idx1), generator=g)]
            total = 0.0
            for b in range(n_batches):
                sel = torch.cat([p0[(torch.arange(b * half, (b + 1) * half)) % len(p0)],
                                 p1[(torch.arange(b * half, (b + 1) * half)) % len(p1)]]).to(dev)
                logit = lin(X[sel]).squeeze(1)
                loss = F.binary_cross_entropy_with_logits(logit, yt[sel])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
            sched.step()
            self.losses_.append(total / n_batches)

    def transform(self, features):
        """Head logits of ``features`` (differentiable for tensors)."""
        if self.linear_ is None:
            raise RuntimeError("CalibrationHead is not fitted yet; call .fit(features, y) first")
        if isinstance(features, torch.Tensor):
            lin = self.linear_.to(features.device)
            return lin(features.to(lin.weight.dtype)).squeeze(-1)
        with torch.no_grad():
            return self.linear_.cpu()(torch.as_tensor(np.asarray(features), dtype=torch.float32)).squeeze(-1).numpy()

    def predict_proba(self, features):
        t = self.transform(features)
        return torch.sigmoid(t) if isinstance(t, torch.Tensor) else 1.0 / (1.0 + np.exp(-t))


# ---------------------------------------------------------------------------------------------
class CalibratedModel(AnomalyModel):
    """A frozen base model followed by a calibrator; an :class:`AnomalyModel` in its own right.

    ``outputs(x)`` gives the calibrated logit, ``σ(logit)`` and, as anomaly score, the calibrated
    logit. ``loss(x, y)`` is the logistic loss of the calibrated logit (pixel-wise models: the
    mean over pixels, Proposition 1). Outputs keep the base's dtype (float32): rankings are those
    of the base up to the rare float32 rounding of ``a z + c`` onto a neighbouring value. The base is put in eval mode and its parameters are frozen
    (``requires_grad = False``); gradients still flow to the input ``x``.
    """

    def __init__(self, base: AnomalyModel, calibrator, method: str):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
        self.base = base.eval().requires_grad_(False)
        self.method = method
        self.calibrator = calibrator
        if isinstance(calibrator, CalibrationHead):
            self.head = calibrator.linear_
        self.pixelwise = bool(getattr(base, "pixelwise", False))
        self.name = f"{method}[{getattr(base, 'name', 'model')}]"

    def train(self, mode: bool = True):  # the base stays in eval mode (frozen batch-norm statistics)
        super().train(mode)
        self.base.eval()
        return self

    def calibrated_logit(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "head":
            return self.head(self.base.head_features(x)).squeeze(-1)
        return self.calibrator.transform(self.base.logit(x))

    def outputs(self, x: torch.Tensor) -> Outputs:
        z = self.calibrated_logit(x)
        return Outputs(z, torch.sigmoid(z), z)

    def loss(self, x: torch.Tensor, y) -> torch.Tensor:
        z = self.calibrated_logit(x)
        y = torch.as_tensor(y, dtype=z.dtype, device=z.device)
        if y.ndim == 1 and z.ndim > 1:
            y = y.view(-1, *([1] * (z.ndim - 1)))
        per = logistic_loss(z, y)
        return per.flatten(1).mean(1) if per.ndim > 1 else per

    def head_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.head_features(x)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, calibrator={self.calibrator!r}"


def _take(x: torch.Tensor, n: int, augment: bool, g: torch.Generator) -> torch.Tensor:
    """Indices of the ``n`` images to use: cycling permutations when augmenting, else at most ``len(x)``."""
    if not augment:
        n = min(n, len(x))
        return torch.randperm(len(x), generator=g)[:n]
    reps = math.ceil(n / len(x))
    return torch.cat([torch.randperm(len(x), generator=g) for _ in range(reps)])[:n]


def _collect(base: AnomalyModel, x: torch.Tensor, idx: torch.Tensor, what: str, augment: Callable | None,
             g: torch.Generator, batch_size: int, progress: bool, desc: str) -> torch.Tensor:
    dev = base.device
    out = []
    with torch.no_grad():
        for s in progress_bar(range(0, len(idx), batch_size), desc=desc, disable=not progress, leave=False):
            xb = x[idx[s:s + batch_size]]
            if augment is not None:
                xb = augment(xb, generator=g)
            xb = xb.to(dev, dtype=torch.float32)
            out.append((base.head_features(xb) if what == "features" else base.logit(xb)).cpu())
    return torch.cat(out)


def resolve_augment(augment):
    """The augmentation a calibrator draws with: ``True`` → :class:`calad_lib.data.Augment`, ``False``/``None`` → none,
    or the callable ``f(x, generator=g)`` itself."""
    if augment is True:
        try:
            from .data import Augment
        except ImportError as exc:
            raise ImportError(f"augment=True needs calad_lib.data.Augment ({exc}); pass augment=False or a callable") from None
        return Augment()
    if augment is False or augment is None:
        return None
    if not callable(augment):
        raise TypeError("augment must be True, False or a callable f(x, generator=g)")
    return augment


def calibrate_many(base_model: AnomalyModel, methods: Sequence[str], *, normal: torch.Tensor,
                   anomalous: torch.Tensor, n: int = 10_000, augment: bool | Callable = True,
                   augment_anomalous: bool = False, seed: int = 0, epochs: int = 200, lr: float = 1e-4,
                   head_batch_size: int = 128, batch_size: int = 256, progress: bool = True,
                   quiet_platt: bool = False) -> dict[str, "CalibratedModel"]:
    """Several post-hoc calibrators of one frozen ``base_model`` on **one** draw of calibration data.

    Platt, β and naive β share one pass of logits, the head one pass of features; each
    model equals ``calibrate(base_model, method, ...)`` with the same arguments (same
    draws, same fit). ``quiet_platt`` silences the warning of a Platt fit that reverses the
    ranking (callers that record the fitted parameters report it themselves).
    """
    methods = list(methods)
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(base_model, AnomalyModel):
        raise TypeError(f"base_model must be a calad AnomalyModel, got {type(base_model).__name__}")
    for what, data in (("normal", normal), ("anomalous", anomalous)):
        if not isinstance(data, torch.Tensor) or data.ndim != 4 or len(data) == 0:
            raise ValueError(f"{what} must be a non-empty image tensor of shape (N, C, H, W)")
    if int(n) < 1:
        raise ValueError(f"n = {n} must be at least 1")
    if "head" in methods and base_model.pixelwise:
        raise ValueError("the calibration head is defined for detection models only (§4.2.1); "
                         "use 'platt' or 'beta' for pixel-wise models")
    aug = resolve_augment(augment)
    base_model.eval()
    out: dict[str, CalibratedModel] = {}
    for what in ("logit", "features"):
        wanted = [m for m in methods if (m == "head") == (what == "features")]
        if not wanted:
            continue
        g = torch.Generator().manual_seed(seed)
        idx0 = _take(normal, int(n), aug is not None, g)
        idx1 = _take(anomalous, int(n), aug is not None and augment_anomalous, g)
        v0 = _collect(base_model, normal, idx0, what, aug, g, batch_size, progress, f"{what}s of normal data")
        v1 = _collect(base_model, anomalous, idx1, what, aug if augment_anomalous else None, g, batch_size,
                      progress, f"{what}s of anomalies")
        y = torch.cat([torch.zeros(len(v0)), torch.ones(len(v1))])
        v = torch.cat([v0, v1])
        for method in wanted:
            if method == "head":
                cal = CalibrationHead(epochs=epochs, lr=lr, batch_size=head_batch_size, seed=seed,
                                      device=base_model.device, progress=progress).fit(v, y)
            else:
                cal = PlattScaling() if method == "platt" else BetaCalibration(
                    "naive" if method == "beta_naive" else "stable")
                with warnings.catch_warnings():
                    if quiet_platt:
                        warnings.filterwarnings("ignore", message="Platt scaling fitted a")
                    cal.fit(v.to(torch.float64), y)
            out[method] = CalibratedModel(base_model, cal, method)
    return {m: out[m] for m in methods}


def calibrate(base_model: AnomalyModel, method: str = "platt", *, normal: torch.Tensor, anomalous: torch.Tensor,
              n: int = 10_000, augment: bool | Callable = True, augment_anomalous: bool = False, seed: int = 0,
              epochs: int = 200, lr: float = 1e-4, head_batch_size: int = 128, batch_size: int = 256,
              progress: bool = True) -> CalibratedModel:
    """Post-hoc calibrate a frozen ``base_model`` (§3.2, protocol of §4.2.1).

    Parameters
    ----------
    method : ``"platt"``, ``"beta"`` (stable), ``"beta_naive"`` or ``"head"``.
    normal : normal calibration images ``(N, C, H, W)`` in ``[0, 1]`` (the calibration split), label 0.
    anomalous : synthetic anomalies (spectral or OE images), label 1.
    n : use ``n`` normal images (drawn with augmentation, cycling through the split, when
        ``augment``; otherwise at most ``len(normal)``) and at most ``n`` anomalies (§4.2.1: 10,000 each).
    augment : ``True`` for :class:`calad_lib.data.Augment` with its defaults, a callable
        ``f(x, generator=g)``, or ``False``. ``augment_anomalous`` applies it to the anomalies too (OE data).
    epochs, lr, head_batch_size : Adam settings of the calibration head (§4.2.1).
    batch_size : images per forward pass while collecting logits/features.

    Returns a :class:`CalibratedModel` named e.g. ``"platt[svdd]"``. To fit several methods on
    the same data, :func:`calibrate_many` collects the logits only once.
    """
    return calibrate_many(base_model, [method], normal=normal, anomalous=anomalous, n=n, augment=augment,
                          augment_anomalous=augment_anomalous, seed=seed, epochs=epochs, lr=lr,
                          head_batch_size=head_batch_size, batch_size=batch_size, progress=progress)[method]
