"""Datasets and input pipelines for weakly supervised object localization.

    from keras_dgdm import data
    train = data.load("cub", "train", data_dir="/data/CUB_200_2011")
    ds = data.train_pipeline(train, image_size=224, batch_size=32, seed=0)
    test = data.eval_pipeline(data.load("cub", "test", data_dir=...), 224, 64)

Datasets (``DATASETS``): "synthetic" (numpy-generated benchmark, ``keras_dgdm.data.synthetic``),
"cub" (tfds or the raw CUB_200_2011 folder), "cars" (tfds cars196), "ilsvrc" and "metadata"
(the wsolevaluation metadata format). The bad-input policy is in
``keras_dgdm.data.validation``.

Importing this package does not import TensorFlow: ``keras_dgdm.data.synthetic.generate`` works
on machines with JAX or PyTorch only. ``load``, the pipelines and the loaders import it when
first used.
"""
from __future__ import annotations

import importlib

DATASETS = ("synthetic", "cub", "cars", "ilsvrc", "metadata")

_LOADERS = {
    "synthetic": ("keras_dgdm.data.pipeline", "load_synthetic"),
    "cub": ("keras_dgdm.data.cub", "load_cub"),
    "cars": ("keras_dgdm.data.cars", "load_cars"),
    "ilsvrc": ("keras_dgdm.data.metadata", "load_ilsvrc"),
    "metadata": ("keras_dgdm.data.metadata", "load_metadata"),
}

# Names resolved lazily (PEP 562), so that TensorFlow loads only when they are used.
_LAZY = {
    "WSOLData": "keras_dgdm.data.pipeline",
    "train_pipeline": "keras_dgdm.data.pipeline",
    "eval_pipeline": "keras_dgdm.data.pipeline",
    "SkipReport": "keras_dgdm.data.validation",
    "DataError": "keras_dgdm.data.validation",
}


def load(name, split, data_dir=None, **options):
    """Loads split ``split`` of dataset ``name`` as a ``WSOLData``.

    Args:
        name: one of ``DATASETS``.
        split: "train", "val" or "test".
        data_dir: where the data is (its meaning depends on the dataset; unused by "synthetic").
        **options: dataset options, passed to the loader: ``pipeline.load_synthetic``,
            ``cub.load_cub``, ``cars.load_cars``, ``metadata.load_ilsvrc``,
            ``metadata.load_metadata``.

    Returns:
        A ``WSOLData`` (examples, num_classes, class_names, num_examples, has_masks, report).

    Raises:
        ValueError: unknown ``name`` or ``split``.
        DataError: the data is missing, wrongly laid out, or has bad examples that the
            ``on_bad`` policy turns into an error.

    Example:
        >>> data = load("synthetic", "test", num_images=16)  # doctest: +SKIP
        >>> data.num_classes  # doctest: +SKIP
        10
    """
    if name not in _LOADERS:
        raise ValueError(f"name must be one of {list(DATASETS)}; got {name!r}.")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be one of ['train', 'val', 'test']; got {split!r}.")
    module, attr = _LOADERS[name]
    return getattr(importlib.import_module(module), attr)(split, data_dir=data_dir, **options)


def __getattr__(attr):
    if attr in _LAZY:
        return getattr(importlib.import_module(_LAZY[attr]), attr)
    raise AttributeError(f"module 'keras_dgdm.data' has no attribute {attr!r}")


__all__ = ["DATASETS", "load", "WSOLData", "train_pipeline", "eval_pipeline", "SkipReport",
           "DataError"]
