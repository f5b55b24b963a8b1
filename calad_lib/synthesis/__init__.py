"""Synthetic and auxiliary anomalies (thesis §3.4, §4.2.1).

>>> import calad_lib as calad
>>> calad.synthesis.spectral(16, channels=1, size=28, seed=0)      # 1/f^α images, Figure 3.4
>>> calad.synthesis.uniform_noise(16, channels=3, size=32)          # the classical baseline
>>> calad.synthesis.oe_images(16, channels=1, size=28, part="calib")  # offline outlier exposure
>>> calad.synthesis.make_defect_textures()                           # MVTec-layout textures with masks
>>> calad.synthesis.paste_patches(normal, source)                    # local anomalies and their masks
"""
from .patches import paste_patches
from .oe import PARTS, PHOTO_PARTS, oe_images, photographs
from .spectral import SLOPE_RANGE, spectral, spectral_magnitude, uniform_noise
from .stats import coverage, radial_power_spectrum, spectral_slope
from ..data.textures import (DEFECT_TYPES, TEXTURE_CLASSES, add_defect, ensure_textures, make_defect_textures,
                             texture_image)   # a dataset, generated; shown in chapter 04 beside the other sources

__all__ = ["spectral", "uniform_noise", "spectral_magnitude", "SLOPE_RANGE", "oe_images", "photographs", "PARTS",
           "PHOTO_PARTS", "make_defect_textures", "ensure_textures", "texture_image", "add_defect",
           "TEXTURE_CLASSES", "DEFECT_TYPES", "radial_power_spectrum", "spectral_slope", "coverage", "paste_patches"]
