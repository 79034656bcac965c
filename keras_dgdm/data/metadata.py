"""Datasets described in the wsolevaluation metadata format (clovaai/wsolevaluation).

A metadata folder holds one sub-folder per split (``train/``, ``val/``, ``test/``), or the four
files directly for a single split. Each line is comma-separated; image ids are paths relative to
the image root (``data_dir``):

* ``image_ids.txt``:    ``<image_id>``                         one line per image (the order kept)
* ``class_labels.txt``: ``<image_id>,<class index from 0>``
* ``image_sizes.txt``:  ``<image_id>,<width>,<height>``        (optional; checked when present)
* ``localization.txt``: ``<image_id>,<x0>,<y0>,<x1>,<y1>``     one line per box, several lines per
  image allowed (optional; needed for evaluation splits)

This gives ILSVRC (wsolevaluation's ``metadata/ILSVRC``, images of ILSVRC 2012 and ImageNetV2),
CUB with its held-out, fully supervised "train-fullsup" split (``metadata/CUB/val``, images of
CUBV2) for hyperparameter search as the reference protocol asks, and any custom dataset.
Mask-style ``localization.txt`` files (OpenImages: ``<image_id>,<mask>,<ignore mask>``) are not
supported.

Example:

    >>> data = load_metadata("test", data_dir="dataset/CUB",
    ...                      metadata_dir="wsolevaluation/metadata/CUB")  # doctest: +SKIP
"""
from __future__ import annotations

import collections
import os

import numpy as np

from keras_dgdm.data import pipeline
from keras_dgdm.data.validation import (
    index_rows,
    parse_int,
    ON_BAD, VERIFY, DataError, Entry, check_choice, validate_entries,
)

_LAYOUT = (
    "Expected layout: METADATA_DIR/<split>/image_ids.txt, class_labels.txt, and for evaluation "
    "splits localization.txt (+ image_sizes.txt), in the format of "
    "github.com/clovaai/wsolevaluation (metadata/ folder); image ids are paths relative to "
    "data_dir."
)


def read_metadata(split_dir, num_classes=None):
    """Parses one split's metadata files.

    Args:
        split_dir: folder holding image_ids.txt, class_labels.txt[, image_sizes.txt,
            localization.txt].
        num_classes: when given, labels must be in ``[0, num_classes)``.

    Returns:
        dict with "image_ids" (list, file order), "labels" (dict id -> int), "sizes" (dict id ->
        (w, h), possibly empty), "boxes" (dict id -> float (k, 4)), "has_localization" (bool).

    Raises:
        DataError: a missing file, a malformed line (file and line number named), an id listed
        in one file but unknown to image_ids.txt, or a label out of range.

    Example:
        >>> read_metadata("metadata/CUB/test")["image_ids"][:1]  # doctest: +SKIP
        ['001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg']
    """
    ids_file = os.path.join(split_dir, "image_ids.txt")
    labels_file = os.path.join(split_dir, "class_labels.txt")
    for f in (ids_file, labels_file):
        if not os.path.isfile(f):
            raise DataError(f"{f} is missing. {_LAYOUT}")
    image_ids = [row[0] for _, row in index_rows(ids_file, 1, sep=",")]
    if not image_ids:
        raise DataError(f"{ids_file} lists no image. {_LAYOUT}")
    known = set(image_ids)
    if len(known) != len(image_ids):
        dup = collections.Counter(image_ids).most_common(1)[0][0]
        raise DataError(f"{ids_file}: image id {dup!r} is listed more than once.")

    labels = {}
    for line_no, (image_id, label) in index_rows(labels_file, 2, sep=","):
        _check_known(image_id, known, labels_file, line_no)
        value = parse_int(label, labels_file, line_no, "class label")
        if value < 0 or (num_classes is not None and value >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise DataError(f"{labels_file}:{line_no}: class label {value} is not in {bound}.")
        labels[image_id] = value
    missing = [i for i in image_ids if i not in labels]
    if missing:
        raise DataError(f"{labels_file}: no class label for {len(missing)} image(s), e.g. "
                        f"{missing[0]!r} (listed in image_ids.txt).")

    sizes = {}
    sizes_file = os.path.join(split_dir, "image_sizes.txt")
    if os.path.isfile(sizes_file):
        for line_no, (image_id, w, h) in index_rows(sizes_file, 3, sep=","):
            _check_known(image_id, known, sizes_file, line_no)
            sizes[image_id] = (parse_int(w, sizes_file, line_no, "width"),
                               parse_int(h, sizes_file, line_no, "height"))

    boxes = collections.defaultdict(list)
    loc_file = os.path.join(split_dir, "localization.txt")
    has_loc = os.path.isfile(loc_file)
    if has_loc:
        for line_no, row in index_rows(loc_file, None, sep=","):
            if len(row) == 3:
                raise DataError(f"{loc_file}:{line_no}: this looks like a mask localization file "
                                "(OpenImages); only box localization is supported.")
            if len(row) != 5:
                raise DataError(f"{loc_file}:{line_no}: expected <image_id>,<x0>,<y0>,<x1>,<y1>; "
                                f"got {len(row)} fields.")
            _check_known(row[0], known, loc_file, line_no)
            try:
                boxes[row[0]].append([float(v) for v in row[1:]])
            except ValueError:
                raise DataError(f"{loc_file}:{line_no}: box coordinates must be numbers; got "
                                f"{row[1:]}.") from None
    return {
        "image_ids": image_ids,
        "labels": labels,
        "sizes": sizes,
        "boxes": {k: np.asarray(v, np.float64).reshape(-1, 4) for k, v in boxes.items()},
        "has_localization": has_loc,
    }


def load_metadata(split, data_dir=None, metadata_dir=None, num_classes=None, class_names=None,
                  on_bad="skip", verify="header", max_bad_fraction=0.05, name="metadata"):
    """Loads a split of a dataset described in the wsolevaluation metadata format.

    Args:
        split: "train", "val" or "test".
        data_dir: image root; image ids are relative to it.
        metadata_dir: folder with one sub-folder per split (or the files of one split).
        num_classes: number of classes (default: largest label + 1 in this split).
        class_names: list of ``num_classes`` names (default: the image ids' folder when each
            class has exactly one, else "class_<i>").
        on_bad: "skip" or "error" (see ``keras_dgdm.data.validation``).
        verify: "header", "decode" or "none".
        max_bad_fraction: with on_bad="skip", the largest tolerated fraction of bad examples.
        name: dataset name used in messages and in ``WSOLData.name``.

    Returns:
        A ``WSOLData``. Evaluation splits (val, test) require localization.txt; every example
        then has at least one box. Train examples have boxes when localization.txt exists.

    Example:
        >>> data = load_metadata("val", "dataset/ILSVRC", "metadata/ILSVRC",
        ...                      num_classes=1000)  # doctest: +SKIP
    """
    pipeline.check_split(split)
    check_choice(on_bad, "on_bad", ON_BAD)
    check_choice(verify, "verify", VERIFY)
    if metadata_dir is None or data_dir is None:
        raise DataError(f"{name}: both data_dir (the image root) and metadata_dir are needed. "
                        f"{_LAYOUT}")
    if not os.path.isdir(metadata_dir):
        raise DataError(f"{name}: metadata_dir {metadata_dir} does not exist. {_LAYOUT}")
    if not os.path.isdir(data_dir):
        raise DataError(f"{name}: data_dir {data_dir} does not exist (it must hold the images "
                        "that image_ids.txt lists).")
    split_dir = os.path.join(metadata_dir, split)
    if not os.path.isdir(split_dir):
        if os.path.isfile(os.path.join(metadata_dir, "image_ids.txt")):
            split_dir = metadata_dir
        else:
            raise DataError(f"{name}: no {split}/ folder in {metadata_dir}. {_LAYOUT}")
    meta = read_metadata(split_dir, num_classes)
    require_boxes = split != "train"
    if require_boxes and not meta["has_localization"]:
        loc_file = os.path.join(split_dir, "localization.txt")
        raise DataError(f"{name}/{split}: {loc_file} is missing; "
                        f"evaluation splits need boxes. {_LAYOUT}")
    ids = meta["image_ids"]
    entries = [
        Entry(
            path=os.path.join(data_dir, image_id),
            label=meta["labels"][image_id],
            boxes=meta["boxes"].get(image_id, np.zeros((0, 4))),
            expected_size=meta["sizes"].get(image_id),
        )
        for image_id in ids
    ]
    kept, report = validate_entries(entries, name, split, on_bad=on_bad, verify=verify,
                                    require_boxes=require_boxes,
                                    max_bad_fraction=max_bad_fraction)
    if num_classes is None:
        num_classes = max(meta["labels"].values()) + 1
    class_names = _class_names(ids, meta["labels"], num_classes, class_names)
    records, max_boxes = pipeline.file_records(kept)
    return pipeline.WSOLData(
        name=name, split=split, num_classes=int(num_classes), class_names=class_names,
        num_examples=len(kept), has_masks=False, report=report, max_boxes=max_boxes,
        records=records, decode=pipeline.decode_file_record,
    )


def load_ilsvrc(split, data_dir=None, metadata_dir=None, **options):
    """ILSVRC through wsolevaluation's ``metadata/ILSVRC`` (1000 classes).

    ``data_dir`` is the image root of wsolevaluation's layout (``train/`` ILSVRC 2012 training
    images, ``val/`` ILSVRC 2012 validation images = the test split, ``val2/`` ImageNetV2 = the
    val split); ``metadata_dir`` is a copy of wsolevaluation's ``metadata/ILSVRC``. Get the
    images from image-net.org (and ImageNetV2 from its authors), the metadata from
    github.com/clovaai/wsolevaluation.

    Args:
        split: "train", "val" or "test".
        data_dir: image root.
        metadata_dir: the ILSVRC metadata folder.
        **options: see ``load_metadata``.

    Returns:
        A ``WSOLData``.
    """
    if metadata_dir is None or data_dir is None:
        raise DataError(
            "ilsvrc needs data_dir (image root holding train/, val/ and val2/ from image-net.org "
            "and ImageNetV2) and metadata_dir (wsolevaluation's metadata/ILSVRC from "
            f"github.com/clovaai/wsolevaluation). {_LAYOUT}"
        )
    options.setdefault("num_classes", 1000)
    return load_metadata(split, data_dir, metadata_dir, name="ilsvrc", **options)


def _class_names(ids, labels, num_classes, given):
    if given is not None:
        given = list(given)
        if len(given) != num_classes:
            raise ValueError(f"class_names must have {num_classes} names; got {len(given)}.")
        return given
    folders = collections.defaultdict(set)
    for image_id in ids:
        folders[labels[image_id]].add(os.path.dirname(image_id))
    names = []
    for c in range(num_classes):
        f = folders.get(c, set())
        names.append(next(iter(f)) if len(f) == 1 and next(iter(f)) else f"class_{c}")
    if len(set(names)) != len(names):  # folders shared between classes: not names
        names = [f"class_{c}" for c in range(num_classes)]
    return names


def _check_known(image_id, known, path, line_no):
    if image_id not in known:
        raise DataError(f"{path}:{line_no}: image id {image_id!r} is not in image_ids.txt.")
