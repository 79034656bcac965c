"""Datasets and input pipelines for weakly supervised object localization.

    from keras_dgdm import data
    train = data.load("cub", "train", data_dir="/data/CUB_200_2011")
    ds = data.train_pipeline(train, image_size=224, batch_size=32, seed=0)
    test = data.eval_pipeline(data.load("cub", "test", data_dir=...), 224, 64)

``DATASETS`` is the one registry of datasets: name -> ``DatasetSpec`` (its loader, class count,
the layout ``--data-dir`` must have, the training recipe it uses). Built in: "synthetic"
(numpy-generated benchmark, ``keras_dgdm.data.synthetic``), "cub" (tfds or the raw
CUB_200_2011 folder), "cars" (tfds cars196), "ilsvrc" and "metadata" (the wsolevaluation
metadata format); ``register_dataset`` adds one. The bad-input policy is in
``keras_dgdm.data.validation``.

Importing this package does not import TensorFlow: ``keras_dgdm.data.synthetic`` and
``keras_dgdm.data.arrays`` (the in-memory splits and their batches) work on machines with JAX or
PyTorch only. ``load``, the tf.data pipelines and the loaders import it when first used.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Optional

#: What ``--data-dir`` holds for a dataset in the wsolevaluation metadata format.
_METADATA_LAYOUT = ("image_ids.txt, class_labels.txt, image_sizes.txt, localization.txt and the "
                    "images under --data-dir")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the registry.

    Args:
        name: registry name (``load(name, ...)``, ``--dataset``).
        loader: ``"module:function"``; ``function(split, data_dir=None, **options)`` returns a
            ``WSOLData``.
        num_classes: the class count when it is fixed (the model is then built before the data
            is read, so a failed weights download is reported before a dataset download);
            ``None``: known once the data is loaded.
        layout: where the data comes from and the layout ``--data-dir`` must have (error
            messages quote it).
        recipe: the ``keras_dgdm.train.RECIPES`` entry training on it starts from.
        arrays_loader: ``"module:function"`` returning an in-memory ``ArrayData`` split (same
            arguments), for ``input_pipeline="arrays"``; ``None``: not available.
    """

    name: str
    loader: str
    num_classes: Optional[int]
    layout: str
    recipe: str
    arrays_loader: Optional[str] = None


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, overwrite: bool = False) -> DatasetSpec:
    """Adds ``spec`` to ``DATASETS`` and returns it (ValueError if the name is taken and not
    ``overwrite``)."""
    if spec.name in DATASETS and not overwrite:
        raise ValueError(f"Dataset {spec.name!r} is already registered; pass overwrite=True "
                         "to replace it.")
    DATASETS[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """The ``DatasetSpec`` of ``name``; ValueError listing the registered names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.")
    return DATASETS[name]


for _spec in (
    # 10: synthetic.load_split's default num_classes (the data option num_classes overrides it)
    DatasetSpec("synthetic", "keras_dgdm.data.pipeline:load_synthetic", 10,
                "the synthetic benchmark (generated, no --data-dir)", "synthetic",
                arrays_loader="keras_dgdm.data.synthetic:load_split"),
    DatasetSpec("cub", "keras_dgdm.data.cub:load_cub", 200,
                "CUB-200-2011: the CUB_200_2011/ folder as distributed (images.txt, "
                "image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, images/; "
                "https://www.vision.caltech.edu/datasets/cub_200_2011/), or no --data-dir to use "
                "tensorflow-datasets' caltech_birds2011 (downloaded on first use)", "cub"),
    DatasetSpec("cars", "keras_dgdm.data.cars:load_cars", 196,
                "Stanford Cars through tensorflow-datasets (cars196): --data-dir is tfds' "
                "data_dir (omit it for tfds' default, downloaded on first use)", "cars"),
    DatasetSpec("ilsvrc", "keras_dgdm.data.metadata:load_ilsvrc", 1000,
                "ILSVRC in the wsolevaluation metadata format (github.com/clovaai/wsolevaluation):"
                " a metadata folder with " + _METADATA_LAYOUT, "ilsvrc"),
    DatasetSpec("metadata", "keras_dgdm.data.metadata:load_metadata", None,
                "a dataset in the wsolevaluation metadata format (github.com/clovaai/"
                "wsolevaluation): " + _METADATA_LAYOUT, "metadata"),
):
    register_dataset(_spec)

# Names resolved lazily (PEP 562), so that TensorFlow loads only when they are used.
_LAZY = {
    "WSOLData": "keras_dgdm.data.pipeline",
    "train_pipeline": "keras_dgdm.data.pipeline",
    "eval_pipeline": "keras_dgdm.data.pipeline",
    "SkipReport": "keras_dgdm.data.validation",
    "DataError": "keras_dgdm.data.validation",
}


def _call(target: str, split, data_dir, options):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)(split, data_dir=data_dir, **options)


def _check_split(split):
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be one of ['train', 'val', 'test']; got {split!r}.")


def load(name, split, data_dir=None, **options):
    """Loads split ``split`` of dataset ``name`` as a ``WSOLData`` (for the tf.data pipelines).

    Args:
        name: a name of ``DATASETS``.
        split: "train", "val" or "test".
        data_dir: where the data is (its meaning depends on the dataset; unused by "synthetic").
        **options: dataset options, passed to the spec's loader (``synthetic.load_split``,
            ``cub.load_cub``, ``cars.load_cars``, ``metadata.load_ilsvrc``,
            ``metadata.load_metadata``).

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
    spec = get_dataset(name)
    _check_split(split)
    return _call(spec.loader, split, data_dir, options)


def load_arrays(name, split, data_dir=None, **options):
    """Loads split ``split`` of dataset ``name`` into memory as an ``ArrayData`` (no
    TensorFlow); ValueError for a dataset without an in-memory loader."""
    spec = get_dataset(name)
    _check_split(split)
    if spec.arrays_loader is None:
        have = [n for n, s in DATASETS.items() if s.arrays_loader]
        raise ValueError(f"Dataset {name!r} has no in-memory loader (input_pipeline 'arrays' "
                         f"works with: {', '.join(have)}); use input_pipeline 'tf.data'.")
    return _call(spec.arrays_loader, split, data_dir, options)


def __getattr__(attr):
    if attr in _LAZY:
        return getattr(importlib.import_module(_LAZY[attr]), attr)
    raise AttributeError(f"module 'keras_dgdm.data' has no attribute {attr!r}")


__all__ = ["DATASETS", "DatasetSpec", "register_dataset", "get_dataset", "load", "load_arrays",
           "WSOLData", "train_pipeline", "eval_pipeline", "SkipReport", "DataError"]
