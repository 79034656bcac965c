"""Stanford Cars (Krause et al., 2013) through tensorflow-datasets ("cars196": image, label, bbox).

Splits: ``train`` and ``test`` are the official ones; ``val`` is the last ``holdout_fraction``
(default 10%) of tfds's train split and ``train`` the rest (pass ``holdout_fraction=0`` to train
on the whole official split; ``val`` is then unavailable). Stanford Cars has no masks.
"""
from __future__ import annotations

from keras_dgdm.data import pipeline
from keras_dgdm.data.validation import check_choice

TFDS_NAME = "cars196"
NUM_CLASSES = 196
_OFFLINE = (
    "Prepare it where its files can be downloaded (python -c \"import tensorflow_datasets as "
    "tfds; tfds.builder('cars196', data_dir='DIR').download_and_prepare()\"), copy DIR here and "
    "pass it as data_dir (fit.py / evaluate.py: --data-dir DIR)."
)


def load_cars(split, data_dir=None, download=True, holdout_fraction=0.1, source="tfds"):
    """Loads a split of Stanford Cars through tensorflow-datasets.

    Args:
        split: "train", "val" or "test".
        data_dir: tfds's data_dir (None: its default, ~/tensorflow_datasets).
        download: let tfds download and prepare the data when missing.
        holdout_fraction: whole percentage of tfds's train split held out as val.
        source: only "tfds" (the raw devkit's .mat files are not read).

    Returns:
        A ``WSOLData`` with 196 classes, one box per image, no masks.

    Example:
        >>> data = load_cars("test")  # doctest: +SKIP
        >>> data.num_classes  # doctest: +SKIP
        196
    """
    pipeline.check_split(split)
    check_choice(source, "source", ("tfds",))
    return pipeline.load_tfds(
        "cars", split, TFDS_NAME, pipeline.holdout_split_spec(split, holdout_fraction),
        data_dir=data_dir, download=download, where=_OFFLINE,
    )
