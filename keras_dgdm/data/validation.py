"""The validation pass run over a dataset's index before any tf.data pipeline is built.

Policy (the same for every file-based loader: raw CUB, wsolevaluation metadata, ILSVRC):

Always an error, raised before training starts (they mean the data is not what we think, and
skipping could silently mislabel):
    a missing or wrongly laid-out folder, a missing index file, a malformed line in an index file,
    an index file that disagrees with another (an image without a label, a label out of range),
    and more than ``max_bad_fraction`` (default 5%) of bad examples.

A *bad example*: skipped and counted (``on_bad="skip"``, the default) or an error naming the
file and the problem (``on_bad="error"``):
    a file listed but missing; a file that is not a readable image (corrupt header); a truncated
    JPEG (no end-of-image marker); an image whose size disagrees with ``image_sizes.txt``; a box
    with ``x1 < x0`` or ``y1 < y0``, a NaN, or lying entirely outside the image; a listed
    segmentation mask that is missing; an evaluation image without any box.

Accepted, counted in the report's notes (nothing is lost):
    grayscale, palette and CMYK images (decoded to RGB), PNG or other formats behind a ``.jpg``
    name (decoded by content), boxes partly outside the image (clipped to it).

``verify`` chooses how much is read: ``"header"`` (default) opens every image header and checks
JPEG end markers (fast: no pixel decoding); ``"decode"`` decodes every image fully (catches
corruption inside the data too; slow); ``"none"`` only checks that files exist. A JPEG whose
entropy-coded data is damaged but whose headers and end marker are intact passes "header": the
TensorFlow decoder then yields it with damaged pixels and a libjpeg warning, it does not stop the
epoch.

This module uses numpy and PIL only.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import os

import numpy as np

logger = logging.getLogger("keras_dgdm.data")

ON_BAD = ("skip", "error")
VERIFY = ("header", "decode", "none")
_DECODABLE = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}  # what tf.io.decode_image reads
_EXTENSIONS = {"JPEG": (".jpg", ".jpeg", ".jpe"), "PNG": (".png",), "GIF": (".gif",),
               "BMP": (".bmp",), "WEBP": (".webp",)}


class DataError(ValueError):
    """A dataset problem found before training: names the file (and line) and what is wrong."""


def index_rows(path, num_fields, sep=None):
    """Yields ``(line number, fields)`` for each non-empty line of a dataset index file.

    Args:
        path: the file (CUB's ``images.txt``, wsolevaluation's ``class_labels.txt``, ...).
        num_fields: how many fields every line must have; None accepts any number.
        sep: None for whitespace-separated files (CUB), "," for comma-separated ones
            (wsolevaluation metadata).

    Raises:
        DataError: naming ``path:line`` when a line has the wrong number of fields.
    """
    kind = "space-separated" if sep is None else "comma-separated"
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            row = line.split(sep)
            if num_fields is not None and len(row) != num_fields:
                raise DataError(f"{path}:{line_no}: expected {num_fields} {kind} field(s); "
                                f"got {len(row)}: {line!r}.")
            yield line_no, row


def parse_int(text, path, line_no, what):
    """``int(text)``, or a DataError naming ``path:line`` and ``what`` the field is."""
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{path}:{line_no}: {what} must be an integer; got {text!r}.") from None


@dataclasses.dataclass
class SkipReport:
    """What the validation pass found.

    Attributes:
        dataset: dataset name.
        split: split name.
        total: examples listed in the index.
        skipped: list of ``(path, reason)`` for each example left out.
        notes: counts of accepted irregularities (e.g. ``"CMYK image converted to RGB"``).
    """

    dataset: str
    split: str
    total: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    notes: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def num_skipped(self):
        """Number of examples left out."""
        return len(self.skipped)

    def summary(self, max_items=10):
        """A human-readable multi-line summary."""
        lines = [
            f"{self.dataset}/{self.split}: {self.total - self.num_skipped} of {self.total} "
            f"examples kept, {self.num_skipped} skipped."
        ]
        for path, reason in self.skipped[:max_items]:
            lines.append(f"  skipped {path}: {reason}")
        if self.num_skipped > max_items:
            lines.append(f"  ... and {self.num_skipped - max_items} more")
        for note, count in sorted(self.notes.items()):
            lines.append(f"  note: {note}: {count}")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


@dataclasses.dataclass
class Entry:
    """One example of a file-based dataset, before decoding.

    Attributes:
        path: image file path.
        label: int class id.
        boxes: float (k, 4) pixel boxes (x0, y0, x1, y1) in the original image; k may be 0.
        mask_path: segmentation mask file, or "" when none.
        expected_size: (width, height) the index promises, or None.
    """

    path: str
    label: int
    boxes: np.ndarray
    mask_path: str = ""
    expected_size: tuple | None = None


def check_choice(value, name, choices):
    """Raises ValueError naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}.")
    return value


def inspect_image(path, verify="header"):
    """Reads what the validation pass needs from one image file.

    Args:
        path: the file.
        verify: "header", "decode" or "none" (see the module docstring).

    Returns:
        ``(size, problem, notes)``: size is ``(width, height)`` or None, problem a string when
        the file is bad (else None), notes a list of accepted irregularities.

    Example:
        >>> inspect_image("/no/such/file.jpg")
        (None, 'file is missing', [])
    """
    if not os.path.isfile(path):
        return None, "file is missing", []
    if verify == "none":
        return None, None, []
    from PIL import Image  # local: only the validation pass needs PIL

    notes = []
    try:
        with Image.open(path) as im:
            fmt, mode, size = im.format, im.mode, im.size
            if verify == "decode":
                im.load()
    except Exception as exc:  # PIL raises many types for bad files
        return None, f"not a readable image ({type(exc).__name__}: {exc})", []
    if fmt not in _DECODABLE:
        return size, f"image format {fmt} cannot be decoded (JPEG, PNG, GIF, BMP, WEBP can)", []
    if size[0] < 1 or size[1] < 1:
        return size, f"image has an empty size {size}", []
    if fmt == "JPEG" and not _has_jpeg_end(path):
        return size, "truncated JPEG (no end-of-image marker)", []
    ext = os.path.splitext(path)[1].lower()
    if ext and ext not in _EXTENSIONS[fmt]:
        notes.append(f"{fmt} data in a {ext} file (decoded by content)")
    if mode == "CMYK":
        notes.append("CMYK image converted to RGB")
    elif mode in ("L", "LA", "1", "P", "I", "I;16", "F"):
        notes.append(f"{'grayscale' if mode != 'P' else 'palette'} image converted to RGB")
    return size, None, notes


def _has_jpeg_end(path, tail=4096):
    """True when the file's last ``tail`` bytes hold a JPEG end-of-image marker (FF D9).

    In JPEG entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FF D9 near
    the end means the stream was written to its end (trailing padding is tolerated).
    """
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        n = f.tell()
        f.seek(max(0, n - tail))
        return b"\xff\xd9" in f.read()


def check_boxes(boxes, size):
    """Checks an example's boxes against its image size.

    Args:
        boxes: (k, 4) pixel boxes (x0, y0, x1, y1).
        size: ``(width, height)`` of the image, or None when unknown.

    Returns:
        ``(boxes, problem, notes)``: boxes clipped to ``[0, width] x [0, height]``, a problem
        string when a box is unusable (else None), and notes.

    Example:
        >>> check_boxes([[5, 5, 2, 8]], (10, 10))[1]
        'box [5.0, 5.0, 2.0, 8.0] has x1 < x0'
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    notes = []
    for row in b:
        if not np.isfinite(row).all():
            return b, f"box {row.tolist()} contains NaN or inf", notes
        if row[2] < row[0]:
            return b, f"box {row.tolist()} has x1 < x0", notes
        if row[3] < row[1]:
            return b, f"box {row.tolist()} has y1 < y0", notes
    if size is None or len(b) == 0:
        return b, None, notes
    w, h = size
    outside = (b[:, 0] >= w) | (b[:, 1] >= h) | (b[:, 2] < 0) | (b[:, 3] < 0)
    if outside.any():
        row = b[int(np.argmax(outside))]
        return b, f"box {row.tolist()} lies outside the {w}x{h} image", notes
    clipped = np.clip(b, 0, [w, h, w, h])
    if not np.array_equal(clipped, b):
        notes.append("box partly outside the image, clipped to it")
    return clipped, None, notes


def validate_entries(entries, dataset, split, on_bad="skip", verify="header",
                     require_boxes=False, max_bad_fraction=0.05, num_threads=8):
    """Runs the validation pass over ``entries`` (a list of ``Entry``).

    Args:
        entries: the examples listed by the index files.
        dataset: dataset name, for messages.
        split: split name, for messages.
        on_bad: "skip" (leave bad examples out and count them) or "error".
        verify: "header", "decode" or "none".
        require_boxes: when True an example without boxes is bad (evaluation splits).
        max_bad_fraction: with ``on_bad="skip"``, more bad examples than this fraction is an error
            anyway (the folder is probably not what it claims to be).
        num_threads: threads reading image headers.

    Returns:
        ``(kept_entries, SkipReport)``; kept entries have their boxes clipped to the image.

    Raises:
        DataError: a bad example with ``on_bad="error"``, too many bad examples, or no example.

    Example:
        >>> kept, report = validate_entries([], "mine", "train")  # doctest: +SKIP
    """
    check_choice(on_bad, "on_bad", ON_BAD)
    check_choice(verify, "verify", VERIFY)
    report = SkipReport(dataset, split, total=len(entries))
    if not entries:
        raise DataError(f"{dataset}/{split}: the index lists no example.")

    def check(entry):
        size, problem, notes = inspect_image(entry.path, verify)
        boxes = entry.boxes
        if problem is None and entry.expected_size is not None and size is not None:
            if tuple(size) != tuple(entry.expected_size):
                problem = (f"image is {size[0]}x{size[1]} but the index says "
                           f"{entry.expected_size[0]}x{entry.expected_size[1]}")
        if problem is None:
            boxes, problem, box_notes = check_boxes(entry.boxes, size or entry.expected_size)
            notes = notes + box_notes
        if problem is None and require_boxes and len(boxes) == 0:
            problem = "no bounding box for this evaluation image"
        if problem is None and entry.mask_path and not os.path.isfile(entry.mask_path):
            problem = f"segmentation mask {entry.mask_path} is missing"
        return boxes, problem, notes

    with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
        results = list(pool.map(check, entries))
    kept = []
    for entry, (boxes, problem, notes) in zip(entries, results):
        if problem is not None:
            report.skipped.append((entry.path, problem))
            continue
        report.notes.update(notes)
        kept.append(dataclasses.replace(entry, boxes=np.asarray(boxes, np.float32).reshape(-1, 4)))
    if report.skipped:
        listing = "\n".join(f"  {p}: {r}" for p, r in report.skipped[:10])
        more = f"\n  ... and {report.num_skipped - 10} more" if report.num_skipped > 10 else ""
        if on_bad == "error":
            raise DataError(
                f"{dataset}/{split}: {report.num_skipped} bad example(s) (on_bad='error'):\n"
                f"{listing}{more}\nFix or remove them, or pass on_bad='skip' to leave them out."
            )
        if report.num_skipped > max_bad_fraction * report.total:
            raise DataError(
                f"{dataset}/{split}: {report.num_skipped} of {report.total} examples are bad, more "
                f"than max_bad_fraction={max_bad_fraction}; the data is probably incomplete or "
                f"laid out differently than expected:\n{listing}{more}"
            )
        logger.warning("%s", report.summary())
    if not kept:
        raise DataError(f"{dataset}/{split}: no usable example.")
    return kept, report
