"""Post-hoc calibration of a frozen anomaly model (thesis §3.2, §4.2.1; §4.3.2's open question).

One API (:class:`Calibrator`: ``fit``, ``transform``, ``predict_proba``): :class:`PlattScaling`,
:class:`BetaCalibration` (stable and naive), :class:`CalibrationHead`, and the location-adaptive
:class:`LocalCalibrator` and :class:`LocationPlatt`; one :class:`CalibratedModel` that wraps a
base with any of them; one fitting protocol, :func:`calibrate`.

>>> models = calad.calibration.calibrate(base, ["platt", "beta", "head"], normal=calib, anomalous=oe)
>>> models["platt"].calibrator.coefficients()     # {'a': ..., 'c': ...}
"""
from .adaptive import FEATURES, LocalCalibrator, LocationPlatt, context_features, position_features
from .base import READS, Calibrator, NotFittedError, network_features
from .head import CalibrationHead
from .logistic import fit_logistic
from .model import CalibratedModel
from .protocol import METHODS, calibrate, make_calibrator, resolve_augment
from .scalar import BetaCalibration, PlattScaling

__all__ = ["Calibrator", "NotFittedError", "READS", "PlattScaling", "BetaCalibration", "CalibrationHead",
           "LocalCalibrator", "LocationPlatt", "CalibratedModel", "calibrate", "make_calibrator", "resolve_augment",
           "METHODS", "FEATURES", "context_features", "position_features", "network_features", "fit_logistic"]
