"""Datasets, protocols and augmentation of the thesis' experiments (§4.2.1, §4.2.2), offline.

>>> import calad_lib as calad
>>> ds = calad.data.load("fashion_mnist", train=True)          # Dataset(images, labels, classes)
>>> split = calad.data.one_vs_all("fashion_mnist", normal_class=0, seed=0)
>>> split = calad.data.per_class("textures:weave", size=64)    # MVTec layout, masks included
>>> x2 = calad.data.Augment(jitter=0.1, noise_std=0.01, hflip=True)(split.train, generator=g)
"""
from .augment import Augment, grayscale, random_crop
from .errors import DataCorrupted, DataError, DataNotFound
from .datasets import (DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, Dataset,
                       cache_clear, class_folder, load, names, parse_name)
from .idx import read_idx, write_idx
from .preprocess import ZScore
from .textures import DEFECT_TYPES, TEXTURE_CLASSES, add_defect, ensure_textures, make_defect_textures, texture_image
from .protocols import (NO_HFLIP, OneVsAll, PerClass, hflip_ok, one_vs_all, per_class, pre_crop_size,
                        split_indices, test_subset)

__all__ = ["Augment", "grayscale", "random_crop", "Dataset", "DataError", "DataNotFound", "DataCorrupted", "load", "cache_clear",
           "class_folder", "names", "parse_name", "FASHION_MNIST_CLASSES", "DEBIAN_FASHION_MNIST",
           "read_idx", "write_idx", "ZScore", "OneVsAll", "PerClass", "one_vs_all", "per_class",
           "split_indices", "test_subset", "pre_crop_size", "hflip_ok", "NO_HFLIP", "TEXTURE_CLASSES", "DEFECT_TYPES", "add_defect",
           "ensure_textures", "make_defect_textures", "texture_image"]
