"""WSOL metrics: MaxBoxAcc(V2), GT-known / Top-1 / Top-5 Loc, Top-k Clas, PxAP, and a streaming
evaluator. The protocol is the one of Choe et al., CVPR 2020 ("Evaluating WSOL Methods Right",
reference code clovaai/wsolevaluation); boxes come from ``keras_dgdm.boxes`` (whose conventions module
docstring defines quantisation, thresholds, components and the box rule) with their IoUs, as
``keras_dgdm.boxes.iou`` computes them (+1 pixel convention).

Definitions (N images, CAM thresholds ``t`` in ``cam_thresholds(interval)`` =
``np.arange(0, 1, interval)``; all accuracies are percentages):

* best IoU of image i at t: max over (predicted boxes at t) x (GT boxes of i) of the IoU.
  Single-contour: the box of the largest contour; multi-contour: the boxes of all contours.
* ``box_accuracy_curve[j, t]``: % of images whose best IoU at t is >= ``iou_thresholds[j]``.
* MaxBoxAcc (``max_box_acc``): max over t of the single-contour curve at IoU 0.5.
* MaxBoxAccV2 (``max_box_acc_v2``): mean over IoU in {0.3, 0.5, 0.7} of the max over t of the
  multi-contour curve (each IoU threshold takes its own best t).
* Top-k Clas (``top1_clas``, ``top5_clas``): % of images whose label is among the k highest
  logits (ties count for the label: correct when fewer than k classes score strictly higher).
* GT-known Loc at t: single-contour box accuracy at IoU 0.5 with the GT class's CAM.
* Top-k Loc at t: % of images with Top-k Clas correct AND best IoU >= 0.5 at t, from the GT
  class's CAM (when the prediction is right, the predicted class's CAM is the GT class's CAM).
* ``best_cam_threshold``: the t maximising GT-known Loc (the first one on ties); ``gt_known_loc``
  (== ``max_box_acc``), ``top1_loc`` and ``top5_loc`` are reported at it, and the ``*_at_fixed``
  variants at ``cam_threshold``, a threshold fixed in advance (e.g. the val split's best;
  ``DEFAULT_CAM_THRESHOLD``, the CAM paper's 20 % of the max, when none is given). The same
  name carries that threshold on to the figures and the SavedModel export.
* PxAP (``pxap``): pixel-wise average precision of the CAM against GT masks (mask value 1 =
  foreground, 0 = background, 255 = ignored). CAM values of positive and negative pixels are
  histogrammed over the bins ``[t_0, t_1), ..., [t_{T-1}, 1), [1, 2), [2, 3]`` (the
  reference's edges: the threshold list followed by 1, 2, 3); true/false positives at each
  bin edge come from reverse cumulative sums; precision = tp / (tp + fp), recall =
  tp / #positives, and AP = 100 * sum(precision[1:] * diff(recall)) over edges with a
  prediction. A perfect map gives 100, a constant map the positive-pixel fraction x 100.

Everything here is numpy (evaluation runs outside the model). ``WSOLEvaluator`` computes every
metric, streaming: it keeps only per-threshold counters and PxAP histograms, never the CAMs;
the one-shot functions (``box_accuracy_curve``, ``max_box_acc``, ``max_box_acc_v2``, ``pxap``,
``evaluate``) run it over a single batch. ``METRIC_TITLES`` names the metrics in tables.
"""
from __future__ import annotations

import numpy as np

from keras_dgdm.boxes import best_iou_curves, validate_boxes, validate_cam
from keras_dgdm.boxes import cam_thresholds as make_cam_thresholds

__all__ = [
    "box_accuracy_curve",
    "max_box_acc",
    "max_box_acc_v2",
    "topk_correct",
    "topk_accuracy",
    "loc_accuracy_curve",
    "pxap",
    "WSOLEvaluator",
    "evaluate",
    "RESULT_KEYS",
    "METRIC_TITLES",
    "LOC_IOU_THRESHOLD",
    "DEFAULT_CAM_THRESHOLD",
]

#: IoU threshold of GT-known / Top-1 / Top-5 Loc and MaxBoxAcc.
LOC_IOU_THRESHOLD = 0.5
#: The CAM threshold of the ``*_at_fixed`` metrics, of the figures' boxes and of the export
#: when none was chosen on a val split (the CAM paper's 20 % of the max).
DEFAULT_CAM_THRESHOLD = 0.2
#: Keys of ``WSOLEvaluator.result()`` (plus ``max_box_acc_v2_iou{30,50,70}``, one per IoU
#: threshold, named by the IoU in percent).
RESULT_KEYS = (
    "num_images", "top1_clas", "top5_clas",
    "gt_known_loc", "top1_loc", "top5_loc", "best_cam_threshold",
    "gt_known_loc_at_fixed", "top1_loc_at_fixed", "top5_loc_at_fixed", "cam_threshold",
    "max_box_acc", "max_box_acc_v2", "pxap",
)
#: A metric's title in tables (the evaluation CLI's, the sweep's), by ``RESULT_KEYS`` key.
METRIC_TITLES = {
    "top1_clas": "Top-1 Clas", "top5_clas": "Top-5 Clas", "gt_known_loc": "GT-known Loc",
    "top1_loc": "Top-1 Loc", "top5_loc": "Top-5 Loc", "max_box_acc": "MaxBoxAcc",
    "max_box_acc_v2": "MaxBoxAccV2", "pxap": "PxAP",
    "best_cam_threshold": "CAM threshold best on this split",
}


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _check_cams(cams):
    arr = np.asarray(cams)
    if arr.ndim != 3:
        raise ValueError(f"cams must have shape (N, H, W); got shape {arr.shape}.")
    if arr.size and arr.dtype.kind == "f" and arr.min() >= 0.0 and arr.max() <= 1.0:
        return arr  # (NaN fails the test above)
    for i in range(arr.shape[0]):
        validate_cam(arr[i], name=f"cams[{i}]")
    return arr


def _check_gt_boxes(gt_boxes, n, height, width):
    if len(gt_boxes) != n:
        raise ValueError(f"gt_boxes must hold one (k, 4) array per CAM: got {len(gt_boxes)} "
                         f"arrays for {n} CAMs.")
    out = []
    for i, b in enumerate(gt_boxes):
        arr = validate_boxes(b, name=f"gt_boxes[{i}]", width=width, height=height)
        if arr.shape[0] == 0:
            raise ValueError(f"gt_boxes[{i}] holds no box; every image needs at least one.")
        out.append(arr)
    return out


def _check_thresholds(values, name):
    t = np.asarray(values, dtype=np.float64).reshape(-1)
    if t.size == 0 or not np.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"{name} must be a non-empty sequence of values in [0, 1]; got {values}.")
    return t


def _check_classification(logits, labels, n):
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[0] != n:
        raise ValueError(f"logits must have shape (N, num_classes) with N = {n}; got "
                         f"{logits.shape}.")
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {n} integer class ids, shape ({n},); got "
                         f"{labels.dtype} array of shape {labels.shape}.")
    bad = (labels < 0) | (labels >= logits.shape[1])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"labels[{i}] = {labels[i]} is outside [0, {logits.shape[1]}).")
    if np.isnan(logits).any():
        raise ValueError("logits contain NaN.")
    return logits, labels.astype(np.int64)


def _check_masks(masks, cams_shape):
    arr = np.asarray(masks)
    if arr.shape != cams_shape:
        raise ValueError(f"masks must have the CAMs' shape {cams_shape}; got {arr.shape}.")
    bad = (arr != 0) & (arr != 1) & (arr != 255)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise ValueError(f"masks[{i}] has values other than 0 (background), 1 (foreground) "
                         "and 255 (ignored).")
    return arr


# ----------------------------------------------------------------------------------------------
# per-image primitives
# ----------------------------------------------------------------------------------------------


def topk_correct(logits, labels, k):
    """Per image: is the label among the k highest logits (fewer than k classes score higher)?

    Example:
        >>> topk_correct([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [2, 0], 1).tolist()
        [False, True]
    """
    logits, labels = _check_classification(logits, labels, len(np.asarray(labels)))
    label_logit = logits[np.arange(labels.shape[0]), labels]
    return (logits > label_logit[:, None]).sum(axis=1) < int(k)


def topk_accuracy(logits, labels, k=1):
    """Top-k classification accuracy (percentage). ``topk_accuracy(l, y, 1)`` is Top-1 Clas."""
    return float(topk_correct(logits, labels, k).mean() * 100.0)


def _loc_hits(best_ious, correct=None, iou_threshold=LOC_IOU_THRESHOLD):
    """(N, T) bool: localised (best IoU >= ``iou_threshold``) and, with ``correct``, classified
    right: GT-known Loc without ``correct``, Top-k Loc with ``topk_correct``'s flags."""
    hit = best_ious >= iou_threshold
    return hit if correct is None else hit & np.asarray(correct, bool)[:, None]


def loc_accuracy_curve(cams, gt_boxes, cam_thresholds, correct=None,
                       iou_threshold=LOC_IOU_THRESHOLD):
    """Localization accuracy at every CAM threshold (single-contour boxes, GT class's CAMs).

    Args:
        cams, gt_boxes, cam_thresholds: as ``box_accuracy_curve`` (the GT class's CAMs).
        correct: None -> GT-known Loc; a (N,) bool array of correct classifications (e.g.
            ``topk_correct(logits, labels, 1)``) -> Top-k Loc.
        iou_threshold: 0.5 in the protocol.

    Returns:
        (T,) float64 percentages.

    Example:
        >>> cam = np.zeros((10, 10)); cam[2:6, 2:6] = 1.0
        >>> loc_accuracy_curve(cam[None], [[[2, 2, 6, 6]]], [0.5], [False]).tolist()
        [0.0]
    """
    cams = _check_cams(cams)
    gts = _check_gt_boxes(gt_boxes, cams.shape[0], cams.shape[2], cams.shape[1])
    t = _check_thresholds(cam_thresholds, "cam_thresholds")
    if correct is not None:
        correct = np.asarray(correct, dtype=bool).reshape(-1)
        if correct.shape[0] != cams.shape[0]:
            raise ValueError(f"correct must hold one flag per CAM ({cams.shape[0]}); got "
                             f"{correct.shape[0]}.")
    hit = _loc_hits(best_iou_curves(cams, gts, t, False), correct, iou_threshold)
    return hit.sum(axis=0) * 100.0 / float(cams.shape[0])


def _pxap_edges(thresholds):
    return np.append(np.asarray(thresholds, np.float64), [1.0, 2.0, 3.0])


def _pxap_from_histograms(pos_hist, neg_hist):
    """AP (percentage), precision and recall from the CAM-value histograms (reference rule)."""
    num_pos = pos_hist.sum()
    if num_pos <= 0:
        raise ValueError("PxAP needs at least one foreground (mask == 1) pixel.")
    tp = pos_hist[::-1].cumsum()
    fp = neg_hist[::-1].cumsum()
    predicted = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / predicted
    recall = tp / num_pos
    valid = predicted[1:] != 0
    ap = float((precision[1:] * np.diff(recall))[valid].sum() * 100.0)
    return ap, precision, recall


def _mask_histograms(cams, masks, edges):
    pos = np.histogram(cams[masks == 1], bins=edges)[0].astype(np.float64)
    neg = np.histogram(cams[masks == 0], bins=edges)[0].astype(np.float64)
    return pos, neg


# ----------------------------------------------------------------------------------------------
# streaming evaluator
# ----------------------------------------------------------------------------------------------

_CONTOURS = ("single", "multi")


class WSOLEvaluator:
    """Streaming WSOL evaluation: feed batches with ``update``, read ``result()``.

    Memory is constant in the number of images: per-threshold counters and PxAP histograms.
    All metrics are defined in this module's docstring; ``result()`` keys are ``RESULT_KEYS``
    plus ``max_box_acc_v2_iou{30,50,70}``.

    Args:
        cam_curve_interval: spacing of the CAM thresholds ``np.arange(0, 1, interval)``.
        iou_thresholds: IoU thresholds of MaxBoxAccV2 and of the box accuracy curves.
        cam_threshold: CAM threshold of the ``*_at_fixed`` metrics, in [0, 1].
        with_pxap: also accumulate PxAP (``update`` then needs ``masks``).
        cam_thresholds: the CAM thresholds themselves, instead of ``cam_curve_interval``'s.
        contours: the box searches to run, ``"single"`` (MaxBoxAcc, the Loc metrics) and / or
            ``"multi"`` (MaxBoxAccV2); the metrics of the other are None.

    Example:
        >>> ev = WSOLEvaluator(cam_curve_interval=0.1)
        >>> cam = np.zeros((1, 10, 10)); cam[0, 2:6, 2:6] = 1.0
        >>> ev.update(cam, [[[2, 2, 6, 6]]], logits=[[0.9, 0.1]], labels=[0])
        >>> ev.result()["top1_loc"]
        100.0
    """

    def __init__(self, cam_curve_interval=0.01, iou_thresholds=(0.3, 0.5, 0.7),
                 cam_threshold=DEFAULT_CAM_THRESHOLD, with_pxap=False, *, cam_thresholds=None,
                 contours=_CONTOURS):
        if cam_thresholds is None:
            self.cam_thresholds = make_cam_thresholds(cam_curve_interval)
        else:
            self.cam_thresholds = _check_thresholds(cam_thresholds, "cam_thresholds")
        self.cam_curve_interval = float(cam_curve_interval)
        self.iou_thresholds = tuple(float(v) for v in _check_thresholds(
            iou_thresholds, "iou_thresholds"))
        fixed = float(cam_threshold)
        if not 0.0 <= fixed <= 1.0:
            raise ValueError(f"cam_threshold must be in [0, 1]; got {cam_threshold}.")
        self.cam_threshold = fixed
        unknown = sorted(set(contours) - set(_CONTOURS))
        if unknown:
            raise ValueError(f"contours must be among {_CONTOURS}; got {unknown}.")
        self.contours = tuple(c for c in _CONTOURS if c in contours)
        self.with_pxap = bool(with_pxap)
        # the fixed threshold rides along as one extra column of every curve
        self._thresholds = np.append(self.cam_thresholds, fixed)
        self.reset()

    def reset(self):
        """Forgets every image seen so far."""
        t = self._thresholds.shape[0]
        k = len(self.iou_thresholds)
        self.num_images = 0
        self._classified = 0
        self._box = {c: np.zeros((k, t), np.int64) for c in self.contours}
        self._gt_known = np.zeros(t, np.int64)
        self._top1_loc = np.zeros(t, np.int64)
        self._top5_loc = np.zeros(t, np.int64)
        self._top1 = 0
        self._top5 = 0
        edges = _pxap_edges(self.cam_thresholds)
        self._pxap_edges = edges
        self._pos_hist = np.zeros(edges.shape[0] - 1)
        self._neg_hist = np.zeros(edges.shape[0] - 1)

    def update(self, cams, gt_boxes=None, logits=None, labels=None, masks=None):
        """Adds a batch.

        Args:
            cams: (B, H, W) GT-class CAMs in [0, 1].
            gt_boxes: B arrays of shape (k_i, 4), boxes in the CAM's pixel frame (needed by the
                box searches of ``contours``).
            logits: (B, num_classes) class scores (any monotone scores: logits or
                probabilities); without them (and ``labels``) the classification metrics and
                Top-k Loc are None.
            labels: (B,) integer GT classes.
            masks: (B, H, W) GT masks (1 / 0 / 255 ignored); required when ``with_pxap``.

        Raises:
            ValueError naming the image / box / argument for a malformed input.
        """
        cams = _check_cams(cams)
        n, h, w = cams.shape
        gts = _check_gt_boxes(gt_boxes, n, h, w) if self.contours else None
        classified = logits is not None or labels is not None
        if classified:
            if self.num_images and not self._classified:
                raise ValueError("logits and labels must come with every batch or none.")
            logits, labels = _check_classification(logits, labels, n)
        elif self._classified:
            raise ValueError("logits and labels must come with every batch or none.")
        if self.with_pxap:
            if masks is None:
                raise ValueError("masks are required: this evaluator computes PxAP "
                                 "(with_pxap=True).")
            masks = _check_masks(masks, cams.shape)
        if classified:
            top1, top5 = topk_correct(logits, labels, 1), topk_correct(logits, labels, 5)
        ious = np.asarray(self.iou_thresholds)
        for contour in self.contours:
            best = best_iou_curves(cams, gts, self._thresholds, contour == "multi")
            self._box[contour] += (best[None] >= ious[:, None, None]).sum(axis=1)
            if contour == "single":
                self._gt_known += _loc_hits(best).sum(axis=0)
                if classified:
                    self._top1_loc += _loc_hits(best, top1).sum(axis=0)
                    self._top5_loc += _loc_hits(best, top5).sum(axis=0)
        if classified:
            self._top1 += int(top1.sum())
            self._top5 += int(top5.sum())
            self._classified += n
        if self.with_pxap:
            pos, neg = _mask_histograms(cams.astype(np.float64), masks, self._pxap_edges)
            self._pos_hist += pos
            self._neg_hist += neg
        self.num_images += n

    def _percent(self, counts):
        return counts * 100.0 / float(self.num_images)

    def _check_seen(self):
        if self.num_images == 0:
            raise ValueError("No image has been added: call update() first.")

    def curves(self):
        """Curves for plotting, over ``cam_thresholds`` (percentages).

        Returns:
            dict: "cam_thresholds" (T,), "iou_thresholds" (K,), with single contours
            "box_acc" (K, T), "gt_known_loc", "top1_loc", "top5_loc" (T,), with multi
            contours "box_acc_multi" (K, T), and with PxAP "pxap_precision", "pxap_recall".
        """
        self._check_seen()
        t = self.cam_thresholds.shape[0]
        out = {"cam_thresholds": self.cam_thresholds.copy(),
               "iou_thresholds": np.asarray(self.iou_thresholds)}
        if "single" in self.contours:
            out["box_acc"] = self._percent(self._box["single"][:, :t])
            out["gt_known_loc"] = self._percent(self._gt_known[:t])
            out["top1_loc"] = self._percent(self._top1_loc[:t])
            out["top5_loc"] = self._percent(self._top5_loc[:t])
        if "multi" in self.contours:
            out["box_acc_multi"] = self._percent(self._box["multi"][:, :t])
        if self.with_pxap:
            _, precision, recall = _pxap_from_histograms(self._pos_hist, self._neg_hist)
            out["pxap_precision"], out["pxap_recall"] = precision, recall
        return out

    def result(self):
        """The flat metrics dict (keys: ``RESULT_KEYS`` and ``max_box_acc_v2_iou{NN}``).

        Percentages except ``num_images`` and the two thresholds; None for what was not
        computed (PxAP without ``with_pxap``, classification without logits, the metrics of a
        contour mode not in ``contours``).
        """
        self._check_seen()
        t = self.cam_thresholds.shape[0]
        out = dict.fromkeys(RESULT_KEYS)
        out.update(num_images=int(self.num_images), cam_threshold=self.cam_threshold)
        if self._classified:
            out["top1_clas"] = self._top1 * 100.0 / self.num_images
            out["top5_clas"] = self._top5 * 100.0 / self.num_images
        if "single" in self.contours:
            gt_known = self._percent(self._gt_known[:t])
            best = int(np.argmax(gt_known))
            single = self._percent(self._box["single"][:, :t])
            if LOC_IOU_THRESHOLD in self.iou_thresholds:
                max_acc = float(single[self.iou_thresholds.index(LOC_IOU_THRESHOLD)].max())
            else:
                max_acc = float(gt_known.max())
            out.update(gt_known_loc=float(gt_known[best]),
                       best_cam_threshold=float(self.cam_thresholds[best]),
                       gt_known_loc_at_fixed=float(self._percent(self._gt_known[t])),
                       max_box_acc=max_acc)
            if self._classified:
                out.update(top1_loc=float(self._percent(self._top1_loc[best])),
                           top5_loc=float(self._percent(self._top5_loc[best])),
                           top1_loc_at_fixed=float(self._percent(self._top1_loc[t])),
                           top5_loc_at_fixed=float(self._percent(self._top5_loc[t])))
        if "multi" in self.contours:
            multi_best = self._percent(self._box["multi"][:, :t]).max(axis=1)
            out["max_box_acc_v2"] = float(np.mean(multi_best))
            for iou_thr, value in zip(self.iou_thresholds, multi_best):
                out[f"max_box_acc_v2_iou{int(round(iou_thr * 100))}"] = float(value)
        if self.with_pxap:
            out["pxap"] = _pxap_from_histograms(self._pos_hist, self._neg_hist)[0]
        return out


# ----------------------------------------------------------------------------------------------
# one-shot metrics: the evaluator over one batch
# ----------------------------------------------------------------------------------------------


def evaluate(cams, gt_boxes, logits, labels, masks=None, **evaluator_kwargs):
    """One-shot evaluation: ``WSOLEvaluator(**evaluator_kwargs)`` fed a single batch.

    Returns:
        ``WSOLEvaluator.result()``.

    Example:
        >>> cam = np.zeros((1, 10, 10)); cam[0, 2:6, 2:6] = 1.0
        >>> evaluate(cam, [[[2, 2, 6, 6]]], [[0.9, 0.1]], [0])["gt_known_loc"]
        100.0
    """
    if masks is not None:
        evaluator_kwargs.setdefault("with_pxap", True)
    ev = WSOLEvaluator(**evaluator_kwargs)
    ev.update(cams, gt_boxes, logits, labels, masks=masks)
    return ev.result()


def box_accuracy_curve(cams, gt_boxes, cam_thresholds, iou_thresholds=(0.3, 0.5, 0.7),
                       multi_contour=False):
    """Box accuracy at every (IoU threshold, CAM threshold).

    Args:
        cams: (N, H, W) float CAMs in [0, 1].
        gt_boxes: sequence of N (k_i, 4) arrays of GT boxes in the CAM's pixel frame.
        cam_thresholds: 1-D CAM thresholds in [0, 1] (``keras_dgdm.boxes.cam_thresholds()``).
        iou_thresholds: IoU thresholds.
        multi_contour: use the boxes of all contours (MaxBoxAccV2) instead of the largest one.

    Returns:
        (len(iou_thresholds), len(cam_thresholds)) float64: the percentage of images whose best
        predicted box reaches IoU >= iou_threshold with any of its GT boxes.

    Example:
        >>> cam = np.zeros((10, 10)); cam[2:6, 2:6] = 1.0
        >>> box_accuracy_curve(cam[None], [[[2, 2, 6, 6]]], [0.5], (0.5,)).tolist()
        [[100.0]]
    """
    contour = "multi" if multi_contour else "single"
    ev = WSOLEvaluator(iou_thresholds=iou_thresholds, cam_thresholds=cam_thresholds,
                       contours=(contour,))
    ev.update(cams, gt_boxes)
    return ev.curves()["box_acc_multi" if multi_contour else "box_acc"]


def max_box_acc(cams, gt_boxes, cam_thresholds=None, iou_threshold=LOC_IOU_THRESHOLD):
    """MaxBoxAcc: the best (over CAM thresholds) single-contour box accuracy at IoU 0.5.

    Args:
        cams, gt_boxes: as ``box_accuracy_curve``.
        cam_thresholds: None -> ``cam_thresholds(0.01)``.
        iou_threshold: 0.5 in the protocol.

    Returns:
        float, a percentage.

    Example:
        >>> cam = np.zeros((10, 10)); cam[2:6, 2:6] = 1.0
        >>> max_box_acc(cam[None], [[[2, 2, 6, 6]]])
        100.0
    """
    t = make_cam_thresholds() if cam_thresholds is None else cam_thresholds
    return float(box_accuracy_curve(cams, gt_boxes, t, (iou_threshold,))[0].max())


def max_box_acc_v2(cams, gt_boxes, cam_thresholds=None, iou_thresholds=(0.3, 0.5, 0.7)):
    """MaxBoxAccV2: mean over IoU thresholds of the best multi-contour box accuracy.

    Returns:
        float, a percentage (each IoU threshold takes its own best CAM threshold).

    Example:
        >>> cam = np.zeros((10, 10)); cam[2:6, 2:6] = 1.0
        >>> max_box_acc_v2(cam[None], [[[2, 2, 6, 6]]])
        100.0
    """
    t = make_cam_thresholds() if cam_thresholds is None else cam_thresholds
    ev = WSOLEvaluator(iou_thresholds=iou_thresholds, cam_thresholds=t, contours=("multi",))
    ev.update(cams, gt_boxes)
    return ev.result()["max_box_acc_v2"]


def pxap(cams, masks, cam_thresholds=None):
    """PxAP: pixel-wise average precision of CAMs against GT masks (percentage).

    Args:
        cams: (N, H, W) float CAMs in [0, 1].
        masks: (N, H, W) with 1 = foreground, 0 = background, 255 = ignored.
        cam_thresholds: None -> ``cam_thresholds(0.01)``; they define the histogram bins.

    Returns:
        float.

    Example:
        >>> m = np.array([[[1, 0], [0, 0]]])
        >>> pxap(m.astype(float), m), pxap(np.full((1, 2, 2), 0.5), m)
        (100.0, 25.0)
    """
    ev = WSOLEvaluator(cam_thresholds=cam_thresholds, with_pxap=True, contours=())
    ev.update(cams, masks=masks)
    return ev.result()["pxap"]
