"""CUB-200-2011 (Wah et al., 2011): through tensorflow-datasets or from the raw folder.

Raw layout, as distributed (``CUB_200_2011.tgz``, plus ``segmentations.tgz`` for masks), from
https://www.vision.caltech.edu/datasets/cub_200_2011/ ::

    DATA_DIR/                      (or DATA_DIR = the CUB_200_2011 folder itself)
      CUB_200_2011/
        images/<class folder>/<name>.jpg
        images.txt                 <image id> <path relative to images/>
        image_class_labels.txt     <image id> <class id from 1>
        train_test_split.txt       <image id> <1: train, 0: test>
        bounding_boxes.txt         <image id> <x> <y> <width> <height>
        classes.txt                <class id> <class name>            (optional)
      segmentations/<class folder>/<name>.png                          (optional: masks)

Boxes ``(x, y, w, h)`` become ``(x, y, x + w, y + h)``, as in the reference metadata and tfds
(see ``keras_dgdm.boxes``). Masks: a pixel is the object when its value is above
``mask_threshold`` (default 0, the reference evaluator's ``> 0.5`` on 0..255 values).

Splits: ``train`` and ``test`` are the official ones. ``val`` is CUB's held-out, fully supervised
"train-fullsup" set of the reference protocol when ``val_metadata_dir`` (wsolevaluation's
``metadata/CUB``, images CUBV2) is given, and ``train`` is then the whole official train split.
Otherwise ``val`` is a seeded, class-stratified hold-out of ``holdout_fraction`` (default 10%) of
the official train split (tfds: its last 10%) and ``train`` is the rest, so that the two never
overlap; pass ``holdout_fraction=0`` to train on the whole official split.
"""
from __future__ import annotations

import os

import numpy as np

from keras_dgdm.data import pipeline
from keras_dgdm.data.metadata import load_metadata
from keras_dgdm.data.validation import (
    index_rows,
    parse_int,
    ON_BAD, VERIFY, DataError, Entry, check_choice, validate_entries,
)

TFDS_NAME = "caltech_birds2011"
NUM_CLASSES = 200
_INDEX_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt",
                "bounding_boxes.txt")
_WHERE = (
    "Get CUB_200_2011.tgz (and segmentations.tgz for masks) from "
    "https://www.vision.caltech.edu/datasets/cub_200_2011/ and extract them into DATA_DIR, or "
    "leave data_dir=None / source='tfds' to let tensorflow-datasets download it. Expected "
    "layout: DATA_DIR/CUB_200_2011/{images/, images.txt, image_class_labels.txt, "
    "train_test_split.txt, bounding_boxes.txt} and optionally DATA_DIR/segmentations/."
)
_OFFLINE = (
    "Without network, get CUB_200_2011.tgz (and segmentations.tgz for masks) from "
    "https://www.vision.caltech.edu/datasets/cub_200_2011/, extract it and pass the folder as "
    "data_dir (fit.py / evaluate.py: --data-dir DIR): the raw folder needs no download."
)


def load_cub(split, data_dir=None, source=None, download=True, holdout_fraction=0.1,
             holdout_seed=0, val_metadata_dir=None, val_data_dir=None, masks=True,
             mask_threshold=0, on_bad="skip", verify="header", max_bad_fraction=0.05):
    """Loads a split of CUB-200-2011.

    Args:
        split: "train", "val" or "test" (see the module docstring for val).
        data_dir: the raw folder, or tfds's data_dir.
        source: "raw", "tfds", or None to pick: "raw" when ``data_dir`` holds any part of the raw
            layout, otherwise "tfds".
        download: (tfds) download and prepare the data when missing.
        holdout_fraction: fraction of the official train split held out as val when no
            ``val_metadata_dir`` is given (tfds: a whole percentage).
        holdout_seed: (raw) seed of the class-stratified hold-out.
        val_metadata_dir: wsolevaluation's ``metadata/CUB`` (or its ``val/``): val becomes
            train-fullsup.
        val_data_dir: image root of the val image ids (default: the raw ``images/`` folder).
        masks: (raw) read segmentation masks when the segmentations/ folder exists.
        mask_threshold: mask values above it are the object.
        on_bad, verify, max_bad_fraction: (raw, metadata) see ``keras_dgdm.data.validation``.

    Returns:
        A ``WSOLData`` with 200 classes.

    Example:
        >>> data = load_cub("test", "/data/CUB_200_2011")  # doctest: +SKIP
        >>> data.num_examples, data.has_masks  # doctest: +SKIP
        (5794, True)
    """
    pipeline.check_split(split)
    if source is not None:
        check_choice(source, "source", ("raw", "tfds"))
    check_choice(on_bad, "on_bad", ON_BAD)
    check_choice(verify, "verify", VERIFY)
    if split == "val" and val_metadata_dir is not None:
        if val_data_dir is None:
            root = find_raw_root(data_dir) if data_dir else None
            if root is None:
                raise DataError("load_cub('val', val_metadata_dir=...) needs val_data_dir, the "
                                "image root of the train-fullsup image ids.")
            val_data_dir = os.path.join(root, "images")
        return load_metadata("val", val_data_dir, val_metadata_dir, num_classes=NUM_CLASSES,
                             on_bad=on_bad, verify=verify, max_bad_fraction=max_bad_fraction,
                             name="cub")
    fraction = 0.0 if val_metadata_dir is not None else holdout_fraction
    if source is None:
        source = "raw" if data_dir is not None and _looks_raw(data_dir) else "tfds"
    if source == "tfds":
        return pipeline.load_tfds(
            "cub", split, TFDS_NAME, pipeline.holdout_split_spec(split, fraction),
            data_dir=data_dir, download=download, mask_key="segmentation_mask",
            mask_threshold=mask_threshold, where=_OFFLINE,
        )
    return _load_raw(split, data_dir, fraction, holdout_seed, masks, mask_threshold, on_bad,
                     verify, max_bad_fraction)


def find_raw_root(data_dir):
    """The folder holding images.txt: ``data_dir`` or ``data_dir/CUB_200_2011``; else None."""
    for root in (data_dir, os.path.join(data_dir, "CUB_200_2011")):
        if os.path.isfile(os.path.join(root, "images.txt")):
            return root
    return None


def _looks_raw(data_dir):
    markers = _INDEX_FILES + ("images", "CUB_200_2011", "segmentations")
    return os.path.isdir(data_dir) and any(
        os.path.exists(os.path.join(data_dir, m)) for m in markers
    )


def read_index(root):
    """Parses the raw index files of a CUB_200_2011 folder.

    Returns:
        dict with "ids" (list, images.txt order), "paths", "labels" (0-based), "is_train",
        "boxes" (id -> (x0, y0, x1, y1) or missing), "class_names" (or None).

    Raises:
        DataError: a missing index file, a malformed line (file and line named), or index files
        that disagree (an image without a label or split entry, a label out of range).
    """
    for f in _INDEX_FILES:
        if not os.path.isfile(os.path.join(root, f)):
            raise DataError(f"CUB: {os.path.join(root, f)} is missing. {_WHERE}")
    if not os.path.isdir(os.path.join(root, "images")):
        raise DataError(f"CUB: {os.path.join(root, 'images')}/ is missing. {_WHERE}")
    paths = dict(row for _, row in index_rows(os.path.join(root, "images.txt"), 2))
    ids = list(paths)
    class_names = None
    classes_file = os.path.join(root, "classes.txt")
    if os.path.isfile(classes_file):
        class_names = [row[1] for _, row in index_rows(classes_file, 2)]
    num_classes = len(class_names) if class_names else None
    labels, is_train, boxes = {}, {}, {}
    lab_file = os.path.join(root, "image_class_labels.txt")
    for line_no, (i, v) in index_rows(lab_file, 2):
        label = parse_int(v, lab_file, line_no, "class id")
        if label < 1 or (num_classes is not None and label > num_classes):
            bound = f"1..{num_classes}" if num_classes else ">= 1"
            raise DataError(f"{lab_file}:{line_no}: class id {label} is not in {bound}.")
        labels[i] = label - 1
    split_file = os.path.join(root, "train_test_split.txt")
    for line_no, (i, v) in index_rows(split_file, 2):
        if v not in ("0", "1"):
            raise DataError(f"{split_file}:{line_no}: expected 1 (train) or 0 (test); got {v!r}.")
        is_train[i] = v == "1"
    box_file = os.path.join(root, "bounding_boxes.txt")
    for line_no, row in index_rows(box_file, 5):
        try:
            x, y, w, h = (float(v) for v in row[1:])
        except ValueError:
            raise DataError(f"{box_file}:{line_no}: x y width height must be numbers; got "
                            f"{row[1:]}.") from None
        boxes[row[0]] = (x, y, x + w, y + h)
    for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train)):
        missing = [i for i in ids if i not in table]
        if missing:
            raise DataError(f"CUB: {name} has no line for {len(missing)} image id(s) of "
                            f"images.txt, e.g. {missing[0]!r}; the index files disagree.")
    return {"ids": ids, "paths": paths, "labels": labels, "is_train": is_train, "boxes": boxes,
            "class_names": class_names}


def stratified_holdout(ids, labels, fraction, seed):
    """The ids held out: ``round(fraction * n_c)`` random images of each class ``c``.

    Deterministic for a given ``seed`` (classes visited in increasing order).
    """
    rng = np.random.default_rng(seed)
    held = set()
    by_class = {}
    for i in ids:
        by_class.setdefault(labels[i], []).append(i)
    for c in sorted(by_class):
        members = by_class[c]
        k = int(round(fraction * len(members)))
        held.update(members[j] for j in rng.permutation(len(members))[:k])
    return held


def _load_raw(split, data_dir, fraction, seed, masks, mask_threshold, on_bad, verify,
              max_bad_fraction):
    if data_dir is None or not os.path.isdir(data_dir):
        raise DataError(f"CUB: data_dir {data_dir!r} is not a folder. {_WHERE}")
    root = find_raw_root(data_dir)
    if root is None:
        raise DataError(f"CUB: no images.txt in {data_dir} or {data_dir}/CUB_200_2011. {_WHERE}")
    index = read_index(root)
    seg_root = None
    if masks:
        for cand in (os.path.join(root, "segmentations"),
                     os.path.join(os.path.dirname(os.path.abspath(root)), "segmentations")):
            if os.path.isdir(cand):
                seg_root = cand
                break
    train_ids = [i for i in index["ids"] if index["is_train"][i]]
    if split == "test":
        chosen = [i for i in index["ids"] if not index["is_train"][i]]
    else:
        if split == "val" and fraction <= 0:
            raise ValueError("split 'val' needs holdout_fraction > 0 or val_metadata_dir.")
        held = stratified_holdout(train_ids, index["labels"], fraction, seed) if fraction > 0 \
            else set()
        chosen = [i for i in train_ids if (i in held) == (split == "val")]
    entries = []
    for i in chosen:
        rel = index["paths"][i]
        box = index["boxes"].get(i)
        entries.append(Entry(
            path=os.path.join(root, "images", rel),
            label=index["labels"][i],
            boxes=np.zeros((0, 4)) if box is None else np.array([box], np.float64),
            mask_path=os.path.join(seg_root, os.path.splitext(rel)[0] + ".png") if seg_root else "",
        ))
    kept, report = validate_entries(entries, "cub", split, on_bad=on_bad, verify=verify,
                                    require_boxes=split != "train",
                                    max_bad_fraction=max_bad_fraction)
    num_classes = len(index["class_names"]) if index["class_names"] else \
        max(index["labels"].values()) + 1
    names = index["class_names"] or [f"class_{c}" for c in range(num_classes)]
    records, max_boxes = pipeline.file_records(kept)

    def decode(record, with_mask):
        return pipeline.decode_file_record(record, with_mask, mask_threshold)

    return pipeline.WSOLData(
        name="cub", split=split, num_classes=num_classes, class_names=names,
        num_examples=len(kept), has_masks=seg_root is not None, report=report,
        max_boxes=max_boxes, records=records, decode=decode,
    )
