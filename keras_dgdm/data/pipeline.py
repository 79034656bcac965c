"""tf.data pipelines of the reference protocol (Choe et al., CVPR 2020; clovaai/wsolevaluation).

* Training (``train_pipeline``): resize to ``round(image_size * 256 / 224)`` square (256 for 224),
  random crop ``image_size``, random horizontal flip; yields ``(images, labels)``.
* Evaluation (``eval_pipeline``): resize to ``image_size`` square, no crop; boxes scaled with int
  truncation (``keras_dgdm.boxes.scale_boxes``, computed in-graph with the same float64
  operations), masks resized with nearest neighbour; boxes padded to ``max_boxes`` rows of
  ``keras_dgdm.boxes.PAD_VALUE``.

Images are float32 raw pixels in [0, 255]: each model does its own preprocessing. Decoding runs
in parallel (``num_parallel_calls=AUTOTUNE``, order kept) and batches are prefetched. For a given
``seed`` the order and the augmentations are the same on every run; each pass over a
non-repeated dataset (each epoch) gets a new order and new crops, also fixed by ``seed``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_dgdm.boxes import PAD_VALUE
from keras_dgdm.data.validation import SkipReport

AUTOTUNE = tf.data.AUTOTUNE
SPLITS = ("train", "val", "test")
_MAX_SHUFFLE_BUFFER = 200_000


@dataclasses.dataclass
class WSOLData:
    """A dataset split, ready for ``train_pipeline`` / ``eval_pipeline``.

    Attributes:
        name: dataset name (e.g. "cub").
        split: "train", "val" or "test".
        num_classes: number of classes of the dataset (labels are in ``[0, num_classes)``).
        class_names: list of ``num_classes`` names.
        num_examples: number of examples.
        has_masks: whether examples carry a "mask".
        report: the ``SkipReport`` of the validation pass (empty for tfds and synthetic data).
        max_boxes: the largest number of boxes of one example.
        records: tf.data.Dataset of undecoded records (cheap to shuffle).
        decode: ``decode(record, with_mask)`` -> example dict (see ``examples``).
        arrays: for "synthetic", the numpy ``SyntheticData`` (incl. part boxes); else None.

    Example:
        >>> data = keras_dgdm.data.load("synthetic", "test", num_images=8)  # doctest: +SKIP
        >>> next(iter(data.examples))["image"].shape  # doctest: +SKIP
        TensorShape([64, 64, 3])
    """

    name: str
    split: str
    num_classes: int
    class_names: list
    num_examples: int
    has_masks: bool
    report: SkipReport
    max_boxes: int
    records: tf.data.Dataset
    decode: object
    arrays: object = None

    @property
    def examples(self):
        """tf.data.Dataset of dicts: "image" uint8 (H, W, 3), "label" int32, "boxes" float32
        (k, 4) pixel (x0, y0, x1, y1) in the image's own size, and "mask" uint8 (H, W) (1 on the
        object) when ``has_masks``. In index order; decoded in parallel."""
        return self.records.map(
            lambda r: self.decode(r, self.has_masks), num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )


def reference_resize_size(image_size):
    """The training resize side for crop ``image_size``: ``round(image_size * 256 / 224)``."""
    return int(round(image_size * 256 / 224))


def train_pipeline(data, image_size, batch_size, seed=None, shuffle=True, repeat=False,
                   drop_remainder=False):
    """Training batches: resize to ``round(S*256/224)``, random crop ``S``, random flip.

    Args:
        data: a ``WSOLData`` (from ``keras_dgdm.data.load``).
        image_size: S, the crop side (>= 1).
        batch_size: batch size (>= 1).
        seed: int fixing the order and the augmentations (None: different on every run).
        shuffle: shuffle the examples (each pass gets a new order).
        repeat: repeat forever (otherwise one pass per iteration over the dataset).
        drop_remainder: drop the last incomplete batch.

    Returns:
        tf.data.Dataset of ``(images float32 (B, S, S, 3) in [0, 255], labels int32 (B,))``.

    Example:
        >>> data = load("synthetic", "train", num_images=64)  # doctest: +SKIP
        >>> ds = train_pipeline(data, image_size=56, batch_size=16, seed=0)  # doctest: +SKIP
    """
    size = _check_positive_int(image_size, "image_size")
    batch_size = _check_positive_int(batch_size, "batch_size")
    resize = reference_resize_size(size)
    ds = data.records
    if shuffle:
        buffer = max(1, min(data.num_examples, _MAX_SHUFFLE_BUFFER))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, randoms))

    def augment(record, random):
        example = data.decode(record, False)
        image = tf.image.resize(example["image"], (resize, resize), antialias=True)
        crop_seed = tf.stack([random, tf.constant(1, tf.int64)])
        flip_seed = tf.stack([random, tf.constant(2, tf.int64)])
        image = tf.image.stateless_random_crop(image, (size, size, 3), seed=crop_seed)
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        image = tf.clip_by_value(image, 0.0, 255.0)
        return image, tf.cast(example["label"], tf.int32)

    ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)


def eval_pipeline(data, image_size, batch_size, max_boxes=None):
    """Evaluation batches: resize to ``S x S`` (no crop), boxes scaled with int truncation.

    Args:
        data: a ``WSOLData``.
        image_size: S (>= 1).
        batch_size: batch size (>= 1).
        max_boxes: rows of the padded box array; None uses ``data.max_boxes`` (at least 1).
            Smaller than ``data.max_boxes`` is an error (boxes would be lost silently).

    Returns:
        tf.data.Dataset of dicts, in index order: "images" float32 (B, S, S, 3) in [0, 255],
        "labels" int32 (B,), "boxes" float32 (B, max_boxes, 4) padded with ``PAD_VALUE`` rows,
        and "masks" uint8 (B, S, S) (1 on the object) when ``data.has_masks``.

    Example:
        >>> batch = next(iter(eval_pipeline(data, 224, 32)))  # doctest: +SKIP
        >>> keras_dgdm.boxes.strip_padding(batch["boxes"][0])  # doctest: +SKIP
    """
    size = _check_positive_int(image_size, "image_size")
    batch_size = _check_positive_int(batch_size, "batch_size")
    needed = max(1, int(data.max_boxes))
    if max_boxes is None:
        max_boxes = needed
    max_boxes = _check_positive_int(max_boxes, "max_boxes")
    if max_boxes < needed:
        raise ValueError(
            f"max_boxes={max_boxes} is smaller than the {needed} boxes of the largest example of "
            f"{data.name}/{data.split}; pass max_boxes >= {needed} (or None)."
        )

    def prepare(record):
        example = data.decode(record, data.has_masks)
        image = example["image"]
        shape = tf.shape(image)
        old_h, old_w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
        resized = tf.image.resize(image, (size, size), antialias=True)
        out = {
            "images": tf.clip_by_value(resized, 0.0, 255.0),
            "labels": tf.cast(example["label"], tf.int32),
            "boxes": pad_boxes(scale_boxes_tf(example["boxes"], (old_h, old_w), size), max_boxes),
        }
        if data.has_masks:
            mask = tf.image.resize(example["mask"][..., None], (size, size), method="nearest")
            out["masks"] = tf.cast(mask[..., 0], tf.uint8)
        return out

    ds = data.records.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def scale_boxes_tf(boxes, original_size, new_size):
    """In-graph ``keras_dgdm.boxes.scale_boxes`` for one image: float32 (k, 4) boxes.

    Same float64 operations in the same order (``x * new / old``, then truncation), so the result
    equals the numpy reference exactly.
    """
    old_h, old_w = original_size
    b = tf.cast(tf.reshape(boxes, (-1, 4)), tf.float64)
    new = tf.constant(float(new_size), tf.float64)
    scale_num = tf.stack([new, new, new, new])
    scale_den = tf.stack([old_w, old_h, old_w, old_h])
    return tf.cast(tf.math.floor(b * scale_num / scale_den), tf.float32)  # b >= 0: floor = trunc


def pad_boxes(boxes, max_boxes):
    """Pads (k, 4) boxes to (max_boxes, 4) with ``PAD_VALUE`` rows (k <= max_boxes)."""
    boxes = tf.reshape(boxes, (-1, 4))
    k = tf.shape(boxes)[0]
    padded = tf.pad(boxes, [[0, max_boxes - k], [0, 0]], constant_values=PAD_VALUE)
    return tf.ensure_shape(padded, (max_boxes, 4))


def decode_image(contents):
    """Encoded bytes -> uint8 (H, W, 3) RGB, whatever the format (JPEG incl. grayscale and CMYK,
    PNG, GIF, BMP, WEBP): the format is read from the content, not the file name."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def decode_mask(contents, threshold=0):
    """Encoded mask image -> uint8 (H, W) with 1 where the value is above ``threshold``.

    The default (``> 0``) is the reference evaluator's rule (``mask > 0.5`` on 0..255 values).
    """
    mask = tf.io.decode_image(contents, channels=1, expand_animations=False)
    mask = tf.ensure_shape(mask, (None, None, 1))[..., 0]
    return tf.cast(mask > threshold, tf.uint8)


def file_records(entries):
    """tf.data records for a list of validated ``validation.Entry``: paths, labels, padded boxes.

    Returns:
        ``(dataset, max_boxes)``.
    """
    counts = np.array([len(e.boxes) for e in entries], np.int32)
    max_boxes = int(counts.max()) if len(counts) else 0
    boxes = np.full((len(entries), max(1, max_boxes), 4), PAD_VALUE, np.float32)
    for i, e in enumerate(entries):
        boxes[i, : len(e.boxes)] = e.boxes
    ds = tf.data.Dataset.from_tensor_slices({
        "path": np.array([e.path for e in entries], dtype=object).astype(str),
        "label": np.array([e.label for e in entries], np.int32),
        "boxes": boxes,
        "num_boxes": counts,
        "mask_path": np.array([e.mask_path for e in entries], dtype=object).astype(str),
    })
    return ds, max_boxes


def decode_file_record(record, with_mask, mask_threshold=0):
    """Decodes a record of ``file_records`` into an example dict."""
    example = {
        "image": decode_image(tf.io.read_file(record["path"])),
        "label": record["label"],
        "boxes": record["boxes"][: record["num_boxes"]],
    }
    if with_mask:
        example["mask"] = decode_mask(tf.io.read_file(record["mask_path"]), mask_threshold)
    return example


def check_split(split):
    """Raises ValueError unless ``split`` is "train", "val" or "test"."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}.")
    return split


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


SYNTHETIC_SPLIT_SIZES = {"train": 3000, "val": 500, "test": 1000}
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


def load_synthetic(split, data_dir=None, num_images=None, image_size=64, num_classes=10, seed=0,
                   num_train=3000, num_val=500, num_test=1000, **generator_options):
    """The synthetic WSOL benchmark (``keras_dgdm.data.synthetic``) as a ``WSOLData``.

    Split sizes default to 3000 / 500 / 1000 images (train / val / test): enough to fine-tune a
    small CNN at 96x96 in minutes on a CPU, and a test set whose localization accuracy is known
    to about +-1.5 points. Split ``i`` (train 0, val 1, test 2) is generated with seed
    ``[seed, i]``: the splits never share images, and the class definitions (``class_seed``) are
    the same in all of them. Examples carry boxes and masks.

    Args:
        split: "train", "val" or "test".
        data_dir: unused (the data is generated); a value is ignored with a warning.
        num_images: images in this split; overrides the per-split sizes below.
        num_train, num_val, num_test: split sizes used when ``num_images`` is None (one set of
            options can then serve all three splits).
        image_size: image side in pixels.
        num_classes: number of classes.
        seed: base seed of the images.
        **generator_options: other arguments of ``synthetic.generate`` (``body_hint``,
            ``context_strength``, ``clutter``, ``object_scale``, ``part_scale``, ``noise``,
            ``class_seed``).

    Returns:
        A ``WSOLData``; its ``arrays`` attribute holds the numpy ``SyntheticData``.
    """
    from keras_dgdm.data import synthetic

    check_split(split)
    if data_dir is not None:
        import logging

        logging.getLogger("keras_dgdm.data").warning(
            "load('synthetic'): data_dir=%r is ignored (the data is generated).", data_dir
        )
    if num_images is None:
        num_images = {"train": num_train, "val": num_val, "test": num_test}[split]
    arrays = synthetic.generate(
        num_images, image_size=image_size, num_classes=num_classes,
        seed=[int(seed), _SPLIT_INDEX[split]], **generator_options,
    )
    n = len(arrays.labels)
    records = tf.data.Dataset.from_tensor_slices({
        "image": arrays.images,
        "label": arrays.labels,
        "boxes": arrays.boxes[:, None, :],
        "mask": arrays.masks,
    })

    def decode(record, with_mask):
        example = {"image": record["image"], "label": record["label"], "boxes": record["boxes"]}
        if with_mask:
            example["mask"] = record["mask"]
        return example

    defs = synthetic.class_definitions(num_classes, generator_options.get("class_seed", 0),
                                       generator_options.get("class_offset", 0))
    return WSOLData(
        name="synthetic", split=split, num_classes=num_classes,
        class_names=defs.names,
        num_examples=n, has_masks=True, report=SkipReport("synthetic", split, total=n),
        max_boxes=1, records=records, decode=decode, arrays=arrays,
    )


def holdout_split_spec(split, holdout_fraction):
    """tfds split string for a split of a dataset whose official splits are train / test.

    ``val`` is the last ``holdout_fraction`` of tfds's train split and ``train`` the rest (tfds
    shuffles examples when it prepares a dataset, so this slice is a fixed pseudo-random subset,
    the same for everyone). ``holdout_fraction`` must be a whole percentage.
    """
    check_split(split)
    if split == "test":
        return "test"
    percent = holdout_fraction * 100
    if not (0 <= holdout_fraction < 1) or abs(percent - round(percent)) > 1e-9:
        raise ValueError("holdout_fraction must be a whole percentage in [0, 0.99] (e.g. 0.1); "
                         f"got {holdout_fraction!r}.")
    percent = int(round(percent))
    if split == "val":
        if percent == 0:
            raise ValueError("split 'val' needs holdout_fraction > 0 (or a val metadata folder).")
        return f"train[{100 - percent}%:]"
    return "train" if percent == 0 else f"train[:{100 - percent}%]"


def load_tfds(name, split, tfds_name, tfds_split, data_dir=None, download=True, mask_key=None,
              mask_threshold=0, class_names=None, where=""):
    """A tfds dataset with "image", "label", "bbox" (and ``mask_key``) as a ``WSOLData``.

    Downloaded and prepared on first use (``keras_dgdm.data.tfds_download``): without network,
    or when the download fails, a ``DataError`` says so and adds ``where``.

    Images (and masks) are decoded after shuffling (``tfds.decode.SkipDecoding``), so the
    shuffle buffer holds encoded bytes only. tfds boxes, normalised (ymin, xmin, ymax, xmax), are
    turned into pixel (x0, y0, x1, y1) here, once, exactly as
    ``keras_dgdm.boxes.from_normalized_yxyx`` does (float64, no rounding).

    Args:
        name: our dataset name ("cub", "cars").
        split: our split name ("train", "val", "test").
        tfds_name: the tfds builder name.
        tfds_split: tfds split string.
        data_dir: tfds data_dir (None: tfds's default, ~/tensorflow_datasets).
        download: let tfds download and prepare the data when it is not there.
        mask_key: feature holding a segmentation mask, or None.
        mask_threshold: mask values above it are the object.
        class_names: names overriding tfds's label names.
        where: where to get the data and how to pass it (added to download errors).

    Returns:
        A ``WSOLData``.

    Raises:
        DataError: not prepared and ``download`` is False, or the download failed.
    """
    import tensorflow_datasets as tfds

    from keras_dgdm.data.tfds_download import ensure_prepared

    decoders = {"image": tfds.decode.SkipDecoding()}
    if mask_key:
        decoders[mask_key] = tfds.decode.SkipDecoding()
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    ensure_prepared(builder, name, download=download, where=where)
    ds = builder.as_dataset(split=tfds_split, shuffle_files=False, decoders=decoders)
    info = builder.info
    label_feature = info.features["label"]
    num_classes = int(label_feature.num_classes)
    names = list(class_names) if class_names is not None else list(label_feature.names)
    cardinality = int(ds.cardinality())
    if cardinality < 0:
        cardinality = int(sum(1 for _ in ds))
    keep = ["image", "label", "bbox"] + ([mask_key] if mask_key else [])
    records = ds.map(lambda ex: {k: ex[k] for k in keep})

    def decode(record, with_mask):
        image = decode_image(record["image"])
        shape = tf.shape(image)
        h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
        b = tf.cast(tf.reshape(record["bbox"], (-1, 4)), tf.float64)
        boxes = tf.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], axis=1)
        example = {"image": image, "label": tf.cast(record["label"], tf.int32),
                   "boxes": tf.cast(boxes, tf.float32)}
        if with_mask and mask_key:
            example["mask"] = decode_mask(record[mask_key], mask_threshold)
        return example

    report = SkipReport(name, split, total=cardinality)
    report.notes["validated by tensorflow-datasets when it prepared the data"] = cardinality
    return WSOLData(
        name=name, split=split, num_classes=num_classes, class_names=names,
        num_examples=cardinality, has_masks=bool(mask_key), report=report, max_boxes=1,
        records=records, decode=decode,
    )
