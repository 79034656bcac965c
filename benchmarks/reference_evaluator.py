"""A cv2 re-implementation of the reference evaluator's box rules, used only as a baseline.

This module restates, with OpenCV, the rules of clovaai/wsolevaluation
(``compute_bboxes_from_scoremaps`` and ``BoxEvaluator.accumulate``) so that tests and
``benchmarks/bench_evaluator.py`` can check that ``keras_dgdm.boxes`` (one union-find pass
per CAM, in numba) gives the same boxes, IoUs and accuracies, and measure how much faster it is.
It is written from the published description of those rules, not copied:

* quantise: ``q = (cam * 255).astype(uint8)`` (in float64);
* at CAM threshold ``t``: ``binary = q > int(t * q.max())`` (``cv2.THRESH_BINARY`` is strict);
* ``cv2.findContours(binary, RETR_TREE, CHAIN_APPROX_SIMPLE)``; no contour -> box (0, 0, 0, 0);
* single-contour: keep ``max(contours, key=cv2.contourArea)``; multi-contour: keep all
  contours (hole contours included, as RETR_TREE returns them);
* box from ``cv2.boundingRect``: ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``;
* an image is correct at (t, iou_threshold) when the best IoU (+1 convention) over its predicted
  boxes x its GT boxes is >= iou_threshold.

It also holds the seeded CAM families that the agreement tests and the benchmark use:
``realistic_cams`` (smooth multi-blob maps with noise, and bicubic-upsampled 14x14 random maps)
and ``smoothed_random_cams`` (Gaussian-smoothed uniform noise).
Requires ``opencv-python-headless`` (the ``test`` extra); the library itself never imports cv2.
"""
from __future__ import annotations

import cv2
import numpy as np

from keras_dgdm.boxes import iou


def reference_boxes(cam, cam_thresholds, multi_contour=False):
    """Boxes at each CAM threshold by the reference's cv2 rules.

    Args:
        cam: (H, W) float array in [0, 1].
        cam_thresholds: iterable of floats in [0, 1).
        multi_contour: keep every contour's box instead of the largest contour's.

    Returns:
        A list (one entry per threshold) of (k, 4) int64 arrays of (x0, y0, x1, y1) boxes.

    Example:
        >>> reference_boxes(np.eye(3), [0.5])[0].tolist()
        [[0, 0, 2, 2]]
    """
    cam = np.asarray(cam, dtype=np.float64)
    height, width = cam.shape
    q = (cam * 255).astype(np.uint8)
    qmax = int(q.max())
    out = []
    for t in cam_thresholds:
        _, binary = cv2.threshold(q, int(float(t) * qmax), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append(np.zeros((1, 4), np.int64))
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        out.append(np.asarray(boxes, np.int64))
    return out


def reference_best_iou_curve(cam, gt_boxes, cam_thresholds, multi_contour=False):
    """(T,) best IoU of the reference's boxes against ``gt_boxes`` at each CAM threshold."""
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    return np.array(
        [iou(b, gt).max() for b in reference_boxes(cam, cam_thresholds, multi_contour)]
    )


def reference_box_accuracy_curve(cams, gt_boxes, cam_thresholds, iou_thresholds=(0.3, 0.5, 0.7),
                                 multi_contour=False):
    """(len(iou_thresholds), T) percentage of correct images, by the reference's rules."""
    correct = np.zeros((len(iou_thresholds), len(cam_thresholds)))
    for cam, gt in zip(cams, gt_boxes):
        curve = reference_best_iou_curve(cam, gt, cam_thresholds, multi_contour)
        for i, thr in enumerate(iou_thresholds):
            correct[i] += curve >= thr
    return correct * 100.0 / len(cams)


def _resize_bicubic(small, size):
    return cv2.resize(small.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)


def realistic_cams(num, size=224, seed=0, noise=0.03):
    """Seeded synthetic CAMs that look like real ones, with one GT box list per CAM.

    Even indices: 1-4 anisotropic Gaussian blobs of random size and height plus Gaussian noise
    (``noise`` std). Odd indices: a 14x14 uniform random map, squared, bicubic-upsampled to
    ``size`` (what a 14x14 feature map looks like after the reference's resize). Every map is
    min-max normalised to [0, 1] (float64). The GT boxes are random boxes around the blobs
    (or random boxes for the upsampled maps), inclusive corners inside the image.

    Returns:
        (cams, gt_boxes): an (num, size, size) float64 array and a list of (k, 4) arrays.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cams, gts = [], []
    for i in range(num):
        if i % 2 == 0:
            cam = np.zeros((size, size))
            boxes = []
            for _ in range(rng.integers(1, 5)):
                cy, cx = rng.uniform(0.1, 0.9, 2) * size
                sy, sx = rng.uniform(0.04, 0.25, 2) * size
                cam += rng.uniform(0.3, 1.0) * np.exp(
                    -0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
                boxes.append([cx - 1.5 * sx, cy - 1.5 * sy, cx + 1.5 * sx, cy + 1.5 * sy])
            cam += rng.normal(0.0, noise, cam.shape)
        else:
            cam = _resize_bicubic(rng.uniform(0, 1, (14, 14)) ** 2, size).astype(np.float64)
            x0, y0 = rng.uniform(0, 0.6, 2) * size
            w, h = rng.uniform(0.2, 0.4, 2) * size
            boxes = [[x0, y0, x0 + w, y0 + h]]
        cam = (cam - cam.min()) / max(cam.max() - cam.min(), 1e-12)
        cams.append(cam)
        b = np.clip(np.trunc(np.asarray(boxes)), 0, size - 1)
        gts.append(b)
    return np.stack(cams), gts


def smoothed_random_cams(num, size=224, seed=0, sigma=2.0):
    """Seeded random smoothed CAMs: uniform noise, Gaussian-smoothed (``cv2.GaussianBlur``,
    standard deviation ``sigma`` pixels), min-max normalised to [0, 1] (float64), each with
    one random GT box (a fifth to half of the side, inclusive corners inside the image).

    Returns:
        (cams, gt_boxes): an (num, size, size) float64 array and a list of (1, 4) arrays.
    """
    rng = np.random.default_rng(seed)
    cams, gts = [], []
    for _ in range(num):
        cam = cv2.GaussianBlur(rng.uniform(0, 1, (size, size)), (0, 0), sigma,
                               borderType=cv2.BORDER_REFLECT)
        cams.append((cam - cam.min()) / max(cam.max() - cam.min(), 1e-12))
        x0, y0 = rng.uniform(0, 0.5, 2) * size
        w, h = rng.uniform(0.2, 0.5, 2) * size
        gts.append(np.clip(np.trunc([[x0, y0, x0 + w, y0 + h]]), 0, size - 1))
    return np.stack(cams), gts
