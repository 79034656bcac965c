"""Boxes from CAMs by the reference evaluator's rules (``keras_dgdm.boxes.conventions``): the
boxes of every CAM threshold, and their best IoU with the GT boxes, from one sweep per CAM
(``keras_dgdm.boxes._sweep``; two in multi-contour mode)."""
from __future__ import annotations

import numpy as np

from keras_dgdm.boxes._sweep import _search, _search_batch
from keras_dgdm.boxes.conventions import validate_boxes, validate_cam

__all__ = ["boxes_at_thresholds", "box_from_cam", "best_iou_curve", "best_iou_curves"]


def _check_size(shape):
    if max(shape) >= 1 << 15:
        raise ValueError(f"cam is too large for the box search (shape {shape}); "
                         "height and width must be below 32768.")


def _check_thresholds(thresholds):
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ValueError("cam_thresholds must not be empty.")
    if not (t.min() >= 0.0 and t.max() <= 1.0):  # NaN fails too
        raise ValueError(f"cam_thresholds must be in [0, 1]; got min {t.min()}, max {t.max()}.")
    return t


def _is_integer(boxes):
    return bool(np.all(boxes == np.floor(boxes)))


def _run_search(cam, thresholds, multi_contour, gt, emit):
    """Checks the inputs (with ``validate_cam``'s errors) and runs ``_search``."""
    arr = np.asarray(cam)
    if arr.ndim != 2 or arr.size == 0 or arr.dtype not in (np.float32, np.float64):
        arr = validate_cam(arr)  # raises for a wrong rank or an empty map
    arr = np.ascontiguousarray(arr)
    _check_size(arr.shape)
    t = _check_thresholds(thresholds)
    out = _search(arr, t, bool(multi_contour), gt, _is_integer(gt), emit)
    if not out[0]:
        validate_cam(arr)  # raises: NaN or values outside [0, 1]
    return out[1:]


def boxes_at_thresholds(cam, cam_thresholds, multi_contour=False):
    """Boxes of a CAM at every CAM threshold, by the reference evaluator's rules.

    Args:
        cam: (H, W) float array in [0, 1].
        cam_thresholds: 1-D sequence of thresholds in [0, 1] (usually ``cam_thresholds()``).
        multi_contour: False -> the box of the largest contour only; True -> the boxes of all
            contours (outer contours of every component and hole contours; their order is not
            cv2's).

    Returns:
        A list with one (k_t, 4) int64 array of (x0, y0, x1, y1) boxes per threshold
        (k_t == 1 in single-contour mode; an empty foreground gives [[0, 0, 0, 0]]).

    Example:
        >>> cam = np.zeros((5, 5)); cam[1:3, 1:4] = 1.0
        >>> boxes_at_thresholds(cam, [0.5])[0].tolist()   # x1 = 3 + 1, y1 = 2 + 1 (cv2 rule)
        [[1, 1, 4, 3]]
    """
    _, inverse, boxes, counts, hole_boxes, hole_counts = _run_search(
        cam, cam_thresholds, multi_contour, np.zeros((0, 4)), True)
    fg = np.split(boxes, np.cumsum(counts)[:-1])[::-1]  # -> increasing level order
    holes = np.split(hole_boxes, np.cumsum(hole_counts)[:-1])
    if not multi_contour:
        return [fg[li] for li in inverse]
    return [np.concatenate([fg[li], holes[li]], axis=0) for li in inverse]


def box_from_cam(cam, threshold):
    """The single-contour box of ``cam`` at one CAM ``threshold``: a (4,) int64 array.

    Example:
        >>> cam = np.zeros((4, 4)); cam[3, 3] = 1.0
        >>> box_from_cam(cam, 0.5).tolist()   # touches the border: x1 = y1 = W - 1
        [3, 3, 3, 3]
    """
    return boxes_at_thresholds(cam, [threshold], multi_contour=False)[0][0]


def best_iou_curve(cam, gt_boxes, cam_thresholds, multi_contour=False):
    """Best IoU between the CAM's box(es) and the GT boxes at every CAM threshold.

    This is the hot path of ``keras_dgdm.metrics``: the boxes of all thresholds come from one
    sweep over the CAM (two in multi-contour mode) and their IoUs (+1 pixel convention, as
    ``keras_dgdm.boxes.iou``) are taken inside it.

    Args:
        cam: (H, W) float array in [0, 1].
        gt_boxes: (k, 4) GT boxes (x0, y0, x1, y1) in the CAM's pixel frame, k >= 1.
        cam_thresholds: 1-D sequence of thresholds in [0, 1].
        multi_contour: see ``boxes_at_thresholds``.

    Returns:
        (T,) float64: the max over (predicted boxes x GT boxes) of the IoU at each threshold.

    Example:
        >>> cam = np.zeros((8, 8)); cam[2:5, 2:5] = 1.0
        >>> best_iou_curve(cam, [[2, 2, 5, 5]], [0.0, 0.5]).tolist()
        [1.0, 1.0]
    """
    gt = validate_boxes(gt_boxes, name="gt_boxes")
    if gt.shape[0] == 0:
        raise ValueError("gt_boxes must hold at least one box.")
    return _run_search(cam, cam_thresholds, multi_contour, np.ascontiguousarray(gt), False)[0]


def best_iou_curves(cams, gt_boxes, cam_thresholds, multi_contour=False):
    """``best_iou_curve`` of every CAM of a batch, in one call (the evaluator's hot path).

    Args:
        cams: (N, H, W) float array in [0, 1].
        gt_boxes: N arrays of GT boxes, shape (k_i, 4) with k_i >= 1, in the CAMs' pixel frame.
        cam_thresholds: 1-D sequence of thresholds in [0, 1].
        multi_contour: see ``boxes_at_thresholds``.

    Returns:
        (N, T) float64: row ``i`` is ``best_iou_curve(cams[i], gt_boxes[i], ...)``.

    Raises:
        ValueError naming ``cams[i]`` or ``gt_boxes[i]`` for a malformed input.

    Example:
        >>> cams = np.zeros((2, 8, 8)); cams[:, 2:5, 2:5] = 1.0
        >>> best_iou_curves(cams, [[[2, 2, 5, 5]], [[2, 2, 3, 3]]], [0.5]).tolist()
        [[1.0], [0.25]]
    """
    arr = np.asarray(cams)
    if arr.ndim != 3:
        raise ValueError(f"cams must have shape (N, H, W); got shape {arr.shape}.")
    if len(gt_boxes) != arr.shape[0]:
        raise ValueError(f"gt_boxes must hold one (k, 4) array per CAM: got {len(gt_boxes)} "
                         f"arrays for {arr.shape[0]} CAMs.")
    if arr.size == 0 or arr.dtype not in (np.float32, np.float64):
        for i in range(arr.shape[0]):
            validate_cam(arr[i], name=f"cams[{i}]")  # raises for an empty map
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    _check_size(arr.shape[1:])
    t = _check_thresholds(cam_thresholds)
    gts = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in gt_boxes]
    sizes = np.array([g.shape[0] for g in gts], np.int64)
    flat = np.concatenate(gts, axis=0) if gts else np.zeros((0, 4))
    for i in np.flatnonzero(sizes == 0)[:1]:
        raise ValueError(f"gt_boxes[{i}] must hold at least one box.")
    try:
        validate_boxes(flat)
    except ValueError:  # say which image
        for i, b in enumerate(gt_boxes):
            validate_boxes(b, name=f"gt_boxes[{i}]")
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    exact = np.logical_and.reduceat(np.all(flat == np.floor(flat), axis=1), offsets[:-1]) \
        if flat.shape[0] else np.zeros(0, np.bool_)
    curves, bad = _search_batch(arr, t, bool(multi_contour), np.ascontiguousarray(flat),
                                offsets, exact)
    if bad >= 0:
        validate_cam(arr[bad], name=f"cams[{bad}]")  # raises: NaN or values outside [0, 1]
    return curves
