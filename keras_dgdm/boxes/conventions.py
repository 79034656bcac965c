"""Box and CAM conventions, defined once for the whole package.

Every box in keras_dgdm is ``(x0, y0, x1, y1)`` in pixels of the image the CAM is compared
against, with *inclusive* corners: a box covers columns ``x0..x1`` and rows ``y0..y1``, so its
area is ``(x1 - x0 + 1) * (y1 - y0 + 1)`` (the "+1 pixel convention" of the reference evaluator,
clovaai/wsolevaluation). This is the convention the published MaxBoxAcc / Top-1 Loc numbers use.

Where the boxes come from decides what ``x1`` means, and we keep the reference's choices so that
numbers stay comparable:

* CUB-200-2011's ``bounding_boxes.txt`` gives ``(x, y, w, h)``; the reference metadata (and tfds,
  whose normalised ``xmax`` is ``(x + w) / width``) turn it into ``x1 = x + w``. We do the same.
* Boxes from CAMs follow the reference's ``cv2.boundingRect`` rule: ``x1 = x + w`` clipped to
  ``width - 1`` (below).
* At evaluation time images are resized (no crop) and GT boxes are scaled with int truncation:
  ``int(x * new_width / old_width)`` (``scale_boxes``).

A fixed-size batch of a variable number of boxes is padded with rows of ``PAD_VALUE`` (-1);
``strip_padding`` removes them. No real box has a negative coordinate (``validate_boxes``).

CAMs and the boxes drawn from them follow the reference evaluator's rules:

* A CAM (score map) is an (H, W) float array in [0, 1] (min-max normalised per image).
* Quantisation: ``q = (cam * 255).astype(uint8)``, computed in float64 (``quantize_cam``).
* CAM thresholds: ``np.arange(0, 1, interval)`` (``cam_thresholds``). At threshold ``t`` the
  integer level is ``int(t * q.max())`` and the foreground is ``q > level`` (strict, like
  ``cv2.threshold(THRESH_BINARY)``).
* Connected components of the foreground are 8-connected (holes are 4-connected background
  regions that do not reach the image border), as in ``cv2.findContours``.
* No foreground pixel -> the single box ``(0, 0, 0, 0)``.
* Box of a contour: ``cv2.boundingRect`` ``(x, y, w, h)`` -> ``(x, y, x + w, y + h)`` with
  ``x1 = min(x + w, W - 1)``, ``y1 = min(y + h, H - 1)``. So ``x1`` is one column *past* the last
  foreground column unless the component touches the right border. This quirk is kept on
  purpose: the published MaxBoxAcc numbers use it.
* Single-contour mode keeps the contour of largest ``cv2.contourArea``: the area of the
  polygon through the centres of the component's outer boundary pixels (holes included), not
  the pixel count. Equal areas are broken the way ``cv2.findContours`` orders its output: the
  component discovered last in raster order (largest index of its first pixel) wins.
* Multi-contour mode keeps every contour ``cv2.findContours(RETR_TREE)`` returns: the outer
  contour of every component and the contour around every hole (its box is the hole's pixel
  box grown by one pixel on each side, then the same ``x + w`` rule).
"""
from __future__ import annotations

import numpy as np

PAD_VALUE = -1.0


def validate_boxes(boxes, name="boxes", width=None, height=None):
    """Checks that ``boxes`` is an array of shape (k, 4) of well-formed boxes and returns it.

    Raises ValueError naming ``name`` and the first offending row when a box has a NaN, a
    negative coordinate, ``x1 < x0`` or ``y1 < y0``, or (when ``width`` / ``height`` are given)
    lies outside the image.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (k, 4) with rows (x0, y0, x1, y1); got shape {arr.shape}."
        )
    if arr.size == 0:
        return arr
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {arr[i].tolist()} contains NaN or inf.")
    checks = [
        ((arr < 0).any(axis=1), "has a negative coordinate"),
        (arr[:, 2] < arr[:, 0], "has x1 < x0"),
        (arr[:, 3] < arr[:, 1], "has y1 < y0"),
    ]
    if width is not None:
        checks.append((arr[:, 2] > width, f"has x1 beyond the image width {width}"))
    if height is not None:
        checks.append((arr[:, 3] > height, f"has y1 beyond the image height {height}"))
    for mask, problem in checks:
        if mask.any():
            i = int(np.argmax(mask))
            raise ValueError(
                f"{name}[{i}] = {arr[i].tolist()} {problem}; boxes are (x0, y0, x1, y1) in "
                "pixels with x0 <= x1 and y0 <= y1."
            )
    return arr


def strip_padding(boxes):
    """Removes the padding rows (all coordinates == PAD_VALUE) from a (k, 4) box array."""
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return arr[~np.all(arr == PAD_VALUE, axis=1)]


def iou(boxes_a, boxes_b):
    """Pairwise IoU of (n, 4) and (m, 4) inclusive-corner boxes: an (n, m) array.

    Uses the +1 pixel convention: box (0, 0, 0, 0) is one pixel. Intersections are clipped at 0.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0 + 1, 0, None) * np.clip(iy1 - iy0 + 1, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def from_normalized_yxyx(bbox, height, width):
    """tfds boxes (ymin, xmin, ymax, xmax) in [0, 1] -> pixel (x0, y0, x1, y1) floats.

    ``x = xmin * width`` etc., rounded to 1e-3 pixel: tfds stores the normalised coordinates as
    float32, so a box edge at pixel 250 comes back as 249.99998, and the eval-time int
    truncation (``scale_boxes``) would then lose a pixel against the reference, which reads the
    integer from the raw files. The conversion happens once, at the data boundary.
    """
    b = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
    out = np.stack(
        [b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], axis=1
    )
    return np.round(out, 3)


def scale_boxes(boxes, original_size, new_size):
    """Scales pixel boxes from an image of ``original_size`` (height, width) to ``new_size`` image to a resized one, truncating to int.

    This is the reference protocol's eval-time rule (wsolevaluation's ``resize_bbox``):
    ``int(x * new_width / old_width)``, in that order of float operations so that exact
    integers truncate the same way. Padding rows are kept as padding.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    (oh, ow), (nh, nw) = original_size, new_size
    pad = np.all(b == PAD_VALUE, axis=1)
    out = np.trunc(b * np.array([nw, nh, nw, nh], np.float64) / np.array([ow, oh, ow, oh], np.float64))
    out[pad] = PAD_VALUE
    return out


def cam_thresholds(interval=0.01):
    """The CAM threshold list ``np.arange(0, 1, interval)`` (the reference's definition).

    Args:
        interval: spacing of the thresholds, in (0, 1).

    Returns:
        A float64 array; ``cam_thresholds(0.25)`` is ``[0, 0.25, 0.5, 0.75]``.
    """
    interval = float(interval)
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval (cam_curve_interval) must be in (0, 1); got {interval}.")
    return np.arange(0, 1, interval)


def validate_cam(cam, name="cam"):
    """Checks that ``cam`` is a finite (H, W) array with values in [0, 1]; returns it as float64.

    Raises:
        ValueError naming ``name`` for a wrong rank, an empty map, NaN/inf or values outside
        [0, 1].
    """
    arr = np.asarray(cam)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) score map; got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    arr = arr.astype(np.float64, copy=False)
    lo, hi = arr.min(), arr.max()  # NaN propagates into both
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"{name} contains NaN.")
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(
            f"{name} must have values in [0, 1] (min-max normalised); got min {lo}, max {hi}."
        )
    return arr


def quantize_cam(cam):
    """Quantises a CAM to uint8 as the reference does: ``(cam * 255).astype(uint8)`` in float64.

    Args:
        cam: (H, W) float array in [0, 1] (float32 inputs are widened to float64 first, as
            the reference does).

    Returns:
        (H, W) uint8 array.

    Example:
        >>> quantize_cam(np.array([[0.0, 0.5, 1.0]])).tolist()
        [[0, 127, 255]]
    """
    return (validate_cam(cam) * 255).astype(np.uint8)

