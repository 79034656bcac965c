"""Boxes from CAMs inside a graph (keras.ops): the in-model twin of ``keras_dgdm.boxes.search``.

``keras_dgdm.boxes.box_from_cam`` computes the box of the reference evaluator
(clovaai/wsolevaluation, which uses OpenCV) with numba on one numpy CAM at a time. A SavedModel
served by TF Serving can call neither, so this module computes the same box with tensor ops,
batched, in five steps:

1. quantise like ``keras_dgdm.boxes.quantize_cam``: ``q = floor(clip(cam * 255, 0, 255))`` in float64
   (the product of a float32 CAM and 255 is exact there);
2. threshold like the reference: ``binary = q > floor(threshold * max(q))`` with the product taken
   in float64, as Python's ``int(threshold * q.max())`` does (in float32, ``0.7 * 10`` would give
   6 instead of 7);
3. 8-connected component labelling of the foreground (the connectivity of ``cv2.findContours``)
   and 4-connected labelling of the background in the same ``while_loop``: every pixel starts
   with its batch-wide index + 1 as label; each step takes the max over the 3x3 neighbourhood
   (the cross for the background) within the pixel's class, lets all pixels sharing a label
   adopt the largest label any of them sees (hooking, a segment max) and jumps pointers twice
   (``label = label[label - 1]``), until nothing changes; every pixel of a component ends with
   the largest index in it. Holes are the background components that touch no border pixel;
   the hole-filled mask is labelled by the same loop started from those labels, which merges
   each hole (and anything inside it) with the enclosing component in a few steps;
4. the largest component by the reference's measure, ``cv2.contourArea`` of its outer contour
   (the polygon through the border pixel centres, holes included, so *not* the pixel count): on
   the hole-filled mask that area is the number of 2 x 2 windows inside the component plus half
   the windows with three of its pixels (the contour cuts those diagonally). Ties go where the
   reference's ``max`` sends them: cv2 lists outer contours in reverse raster order of their
   first pixel, so the component starting last wins;
5. its bounding box by masked min / max with the reference's ``boundingRect`` quirk:
   ``x0 = x_min``, ``y0 = y_min``, ``x1 = min(x_max + 1, W - 1)``, ``y1 = min(y_max + 1, H - 1)``.
   No pixel above the threshold gives ``(0, 0, 0, 0)``, as in the reference.

``tests/test_boxes_graph.py`` checks that the boxes equal ``box_from_cam``'s and OpenCV's;
``python -m keras_dgdm.boxes.graph`` counts disagreements on larger sets (figures and command in
BENCHMARKS.md).

Boxes follow ``keras_dgdm.boxes.conventions``: ``(x0, y0, x1, y1)``, inclusive corners, in CAM pixels.
"""
from __future__ import annotations

import keras
import numpy as np
import scipy.ndimage as ndi
from keras import ops

from keras_dgdm.boxes.conventions import cam_thresholds as make_cam_thresholds
from keras_dgdm.boxes.search import box_from_cam
from keras_dgdm.data.synthetic import generate


def quantize_cams(cams):
    """Quantises CAMs in [0, 1] to the integers 0..255 exactly like the reference evaluator.

    Args:
        cams: float tensor (N, H, W) (or any shape) of CAMs in [0, 1].

    Returns:
        int32 tensor of the same shape: ``floor(clip(cam * 255, 0, 255))`` computed in float64,
        the value of ``keras_dgdm.boxes.quantize_cam`` (``(cam * 255).astype(uint8)``).

    Example:
        >>> quantize_cams(np.array([[[0.0, 0.5, 1.0]]], "float32"))  # [[[0, 127, 255]]]
    """
    scaled = ops.cast(cams, "float64") * 255.0
    return ops.cast(ops.floor(ops.clip(scaled, 0.0, 255.0)), "int32")


def threshold_cams(cams, threshold):
    """Foreground masks of CAMs at a threshold, with the reference's quantisation and rounding.

    Args:
        cams: float tensor (N, H, W) of CAMs in [0, 1].
        threshold: scalar in [0, 1] (a Python float or a scalar tensor, float64 to match the
            reference exactly), the fraction of each CAM's maximum (after quantisation) a pixel
            must exceed.

    Returns:
        bool tensor (N, H, W): ``q > floor(threshold * max(q))`` per image, ``q`` from
        ``quantize_cams``; the product is computed in float64 like Python's ``int(...)``.
    """
    # floor(c) > cut <=> c >= cut + 1 for an integer cut, so the quantised map itself is never
    # built: the clipped product c is compared with cut + 1, and max(q) = floor(max(c)).
    scaled = ops.clip(ops.cast(cams, "float64") * 255.0, 0.0, 255.0)
    q_max = ops.floor(ops.max(scaled, axis=(1, 2), keepdims=True))
    # A Python float must reach float64 without a float32 detour (0.7 -> 0.69999999 -> cut 6).
    threshold = ops.cast(ops.convert_to_tensor(np.float64(threshold) if isinstance(
        threshold, (int, float, np.floating)) else threshold), "float64")
    cut = ops.floor(threshold * q_max)
    return ops.greater_equal(scaled, cut + 1.0)


def _neighbour_max(labels, connectivity):
    """Max over each pixel's neighbourhood (3x3 for connectivity 8, the cross for 4), (N, H, W).

    Shifted slices of a zero-padded copy (int32; TensorFlow's int32 max pool is ~10x slower).
    """
    padded = ops.pad(labels, ((0, 0), (1, 1), (1, 1)))
    if connectivity == 8:  # separable: the max of three columns, then of three rows
        rows = ops.maximum(ops.maximum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])
        return ops.maximum(ops.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
    return ops.maximum(
        ops.maximum(labels, ops.maximum(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1])),
        ops.maximum(padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]),
    )


def _gather(values, indices):
    """``values[indices]`` for a 1-D ``values`` and indices known to be in range.

    ``tf.gather`` on TensorFlow (``ops.take`` adds a negative-index fix-up, three more ops per
    call, which matters at batch 1); ``ops.take`` on the other backends.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the TensorFlow backend only (deferred: others lack it)

        return tf.gather(values, indices)
    return ops.take(values, indices)


def _global_index(shape):
    """int32 (N, H, W): each pixel's flat index in the whole batch, plus 1."""
    n, h, w = shape[0], shape[1], shape[2]
    return ops.reshape(ops.arange(1, n * h * w + 1, dtype="int32"), (n, h, w))


def _propagate(labels, inside, inside_connectivity=8, outside_labelled=False):
    """Connected component labels of a mask and of its complement at once (one ``while_loop``).

    Args:
        labels: int32 (N, H, W), every pixel labelled: the batch-wide flat index + 1 of a pixel
            of the same component whose own label is at least its index + 1 (``_global_index``
            is a valid start; so is any earlier result of this function on a mask whose
            components are unions of the earlier ones, which is how the hole-filled mask is
            labelled in a few steps).
        inside: bool (N, H, W); its pixels connect with ``inside_connectivity`` (8 or 4), the
            other pixels with the other one (4 or 8), never across the two classes.
        outside_labelled: the pixels outside ``inside`` already carry their final labels (they
            are kept, which saves their neighbourhood max).

    Returns:
        int32 (N, H, W): every pixel labelled with the largest batch-wide index + 1 of its
        component. Each step takes the max over the neighbourhood (within the pixel's class),
        lets all pixels sharing a label adopt the largest label any of them sees (hooking, a
        segment max), and jumps pointers twice (``label = label[label - 1]``: the pixel a label
        names belongs to the same component and its label is as large or larger), until no
        pixel sees a larger label in its neighbourhood.
    """
    shape = ops.shape(labels)
    size = shape[0] * shape[1] * shape[2]
    outside_connectivity = 12 - inside_connectivity

    def spread_of(current):
        own = ops.where(inside, current, 0)
        if outside_labelled:
            return ops.where(inside, _neighbour_max(own, inside_connectivity), current)
        return ops.where(
            inside,
            _neighbour_max(own, inside_connectivity),
            _neighbour_max(current - own, outside_connectivity),
        )

    def cond(current, spread):
        # No pixel sees a larger label next to it: labels are constant on each component.
        return ops.any(ops.not_equal(spread, current))

    def body(current, spread):
        flat = ops.reshape(current, (-1,))
        hook = ops.segment_max(ops.reshape(spread, (-1,)), flat, num_segments=size + 1)
        merged = _gather(hook, flat)  # >= spread: the pixel is in its own label's segment
        # Pointer jumps (twice: fewer steps, 4 instead of 7 on 64 x 64 CAMs): >= merged, as
        # labels only grow from index + 1.
        jumped = _gather(merged, merged - 1)
        jumped = _gather(jumped, jumped - 1)
        new = ops.reshape(jumped, shape)
        return new, spread_of(new)

    labels, _ = ops.while_loop(cond, body, (labels, spread_of(labels)))
    return labels


def label_components(binary, connectivity=8):
    """Connected component labels of a batch of binary masks.

    Args:
        binary: bool tensor (N, H, W).
        connectivity: 8 (diagonal neighbours connect, the foreground rule of
            ``cv2.findContours``) or 4.

    Returns:
        int32 tensor (N, H, W): 0 on the background; on the foreground, the largest flat index
        (``y * W + x``) + 1 in the pixel's component, so two pixels share a label iff they are
        connected.

    Example:
        >>> label_components(np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 0]]], bool))
        # [[[5, 0, 0], [0, 5, 0], [0, 0, 0]]]: diagonal neighbours are one component
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8; got {connectivity!r}.")
    binary = ops.convert_to_tensor(binary, "bool")
    shape = ops.shape(binary)
    labels = _propagate(_global_index(shape), binary, connectivity)
    offsets = ops.reshape(ops.arange(shape[0], dtype="int32") * (shape[1] * shape[2]), (-1, 1, 1))
    return ops.where(binary, labels - offsets, 0)


def _holes(binary, labels):
    """Background pixels whose (4-connected) component does not touch the image border.

    ``labels``: the ``_propagate`` result with ``inside=binary`` (8-connected foreground).
    """
    shape = ops.shape(labels)
    background = ops.logical_not(binary)
    # Only the border pixels are scattered (a small segment max); every pixel then reads its
    # component's flag with one gather.
    edge_labels = ops.concatenate(
        [labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]], axis=1
    )
    edge_background = ops.concatenate(
        [background[:, 0, :], background[:, -1, :], background[:, :, 0], background[:, :, -1]],
        axis=1,
    )
    size = shape[0] * shape[1] * shape[2]
    touches = ops.segment_max(
        ops.reshape(ops.cast(edge_background, "int32"), (-1,)),
        ops.reshape(edge_labels, (-1,)),
        num_segments=size + 1,
    )
    reaches = ops.reshape(_gather(touches, ops.reshape(labels, (-1,))), shape) > 0
    return ops.logical_and(background, ops.logical_not(reaches))


def fill_holes(binary):
    """Adds to each mask the background pixels that cannot reach the image border.

    The background is 4-connected (the complement rule of an 8-connected foreground), and the
    outside of the image counts as background, as in ``cv2.findContours``.

    Args:
        binary: bool tensor (N, H, W).

    Returns:
        bool tensor (N, H, W): ``binary`` with its holes filled.
    """
    binary = ops.convert_to_tensor(binary, "bool")
    labels = _propagate(_global_index(ops.shape(binary)), binary, 8)
    return ops.logical_or(binary, _holes(binary, labels))


def boxes_from_cams(cams, threshold):
    """Box of the largest connected component above ``threshold`` in each CAM, in graph.

    The batched, tensor-op twin of ``keras_dgdm.boxes.box_from_cam`` (see the module
    docstring for the steps and how "largest" matches the reference's ``cv2.contourArea``).

    Args:
        cams: float tensor (N, H, W), CAMs in [0, 1] at the resolution the boxes are wanted in.
        threshold: scalar in [0, 1], Python float or scalar tensor (the CAM threshold).

    Returns:
        int32 tensor (N, 4) of boxes ``(x0, y0, x1, y1)`` with the reference's
        ``x1 = min(x_max + 1, W - 1)`` rule; ``(0, 0, 0, 0)`` where no pixel is above threshold.

    Example:
        >>> cam = np.zeros((1, 8, 8), "float32"); cam[0, 2:4, 1:6] = 1.0
        >>> boxes_from_cams(cam, 0.5)  # [[1, 2, 6, 4]]
    """
    if len(cams.shape) != 3:
        raise ValueError(f"cams must have shape (N, H, W); got shape {tuple(cams.shape)}.")
    binary = threshold_cams(cams, threshold)
    shape = ops.shape(binary)
    n, h, w = shape[0], shape[1], shape[2]
    size = n * h * w
    index = _global_index(shape)
    # One loop labels the foreground (8-connected) and the background (4-connected); the
    # hole-filled mask is then labelled starting from those labels (holes and the components
    # inside them merge with the enclosing component in a few steps).
    labels = _propagate(index, binary, 8)
    filled = ops.logical_or(binary, _holes(binary, labels))
    # The background left (reaching the border) keeps its labels.
    labels = _propagate(labels, filled, 8, outside_labelled=True)
    flat_labels = ops.reshape(labels, (-1,))

    # Contour area through the border pixel centres: every 2x2 window of the filled component
    # adds 1 if all four pixels are in it and 1/2 if three are (the contour cuts the window
    # diagonally); fewer add nothing. The window's pixels all belong to one component. Counted
    # in halves (int32): max(count - 2, 0).
    padded = ops.pad(ops.cast(filled, "int32"), ((0, 0), (1, 1), (1, 1)))
    count = padded[:, :-1, :-1] + padded[:, :-1, 1:] + padded[:, 1:, :-1] + padded[:, 1:, 1:]
    half_areas = ops.maximum(count - 2, 0)
    padded_labels = ops.pad(ops.where(filled, labels, 0), ((0, 0), (1, 1), (1, 1)))
    window_label = ops.maximum(
        ops.maximum(padded_labels[:, :-1, :-1], padded_labels[:, :-1, 1:]),
        ops.maximum(padded_labels[:, 1:, :-1], padded_labels[:, 1:, 1:]),
    )
    # Per-component values sit at the slot of the component's label, which is its root pixel's
    # index + 1: dropping slot 0 aligns them with the pixels (N, H * W).
    areas = ops.segment_sum(
        ops.reshape(half_areas, (-1,)), ops.reshape(window_label, (-1,)), num_segments=size + 1
    )
    areas = ops.reshape(areas[1:], (n, h * w))
    # Ties: the reference keeps the first contour of the largest area, and cv2 lists the outer
    # contours in reverse raster order of their first pixel, so the component whose first pixel
    # (smallest index) comes last wins.
    minus_first = ops.segment_max(-ops.reshape(index, (-1,)), flat_labels, num_segments=size + 1)
    first = ops.reshape(-minus_first[1:], (n, h * w))
    root = ops.reshape(ops.logical_and(filled, ops.equal(labels, index)), (n, h * w))
    areas = ops.where(root, areas, -1)
    top = ops.logical_and(root, ops.equal(areas, ops.max(areas, axis=1, keepdims=True)))
    best = ops.cast(ops.argmax(ops.where(top, first, -1), axis=1), "int32")
    best = best + ops.arange(n, dtype="int32") * (h * w) + 1  # the winner's label

    mask = ops.equal(labels, ops.reshape(best, (n, 1, 1)))
    xs = ops.reshape(ops.arange(w, dtype="int32"), (1, 1, w))
    ys = ops.reshape(ops.arange(h, dtype="int32"), (1, h, 1))
    x_min = ops.min(ops.where(mask, xs, w), axis=(1, 2))
    y_min = ops.min(ops.where(mask, ys, h), axis=(1, 2))
    x_max = ops.max(ops.where(mask, xs, -1), axis=(1, 2))
    y_max = ops.max(ops.where(mask, ys, -1), axis=(1, 2))
    boxes = ops.stack(
        [x_min, y_min, ops.minimum(x_max + 1, w - 1), ops.minimum(y_max + 1, h - 1)], axis=1
    )
    found = ops.any(binary, axis=(1, 2))
    return ops.where(ops.expand_dims(found, 1), boxes, ops.zeros_like(boxes))


def compare_with_reference(cams, cam_thresholds):
    """Counts (CAM, threshold) pairs where ``boxes_from_cams`` differs from ``box_from_cam``.

    Args:
        cams: (N, H, W) float32 numpy CAMs in [0, 1].
        cam_thresholds: iterable of thresholds in [0, 1].

    Returns:
        ``(disagreements, pairs)``, two ints.

    Example:
        >>> wrong, total = compare_with_reference(cams, make_cam_thresholds(0.01))
        >>> total == len(cams) * 100   # wrong == 0: every box agrees
        True
    """
    cams = np.asarray(cams, dtype=np.float32)
    wrong = total = 0
    for threshold in cam_thresholds:
        got = np.asarray(boxes_from_cams(cams, float(threshold)))
        want = np.stack([box_from_cam(cam, float(threshold)) for cam in cams])
        wrong += int((got != want).any(axis=1).sum())
        total += len(cams)
    return wrong, total


def _main():
    """``python -m keras_dgdm.boxes.graph``: counts disagreements with ``box_from_cam``."""
    def normalise(maps):
        low = maps.min(axis=(1, 2), keepdims=True)
        high = maps.max(axis=(1, 2), keepdims=True)
        return ((maps - low) / np.maximum(high - low, 1e-12)).astype(np.float32)

    rng = np.random.default_rng(0)
    data = generate(64, image_size=224, num_classes=10, seed=1)
    # CAM-like maps of the synthetic test images: the object mask, blurred, with blobs of
    # background activation (clutter) and noise.
    masks = data.masks.astype(np.float64)
    clutter = np.stack([ndi.gaussian_filter(rng.random((224, 224)), 12) for _ in masks])
    synthetic = np.stack([ndi.gaussian_filter(m, 8) for m in masks]) + 0.6 * normalise(clutter)
    synthetic = normalise(synthetic + 0.05 * rng.random(synthetic.shape))
    cases = {"synthetic test split, mask-derived CAMs (64 x 224 x 224)": synthetic}
    for sigma in (0.0, 2.0, 8.0):
        noise = rng.random((32, 224, 224))
        maps = np.stack([ndi.gaussian_filter(x, sigma) for x in noise]) if sigma else noise
        cases[f"random maps, gaussian sigma {sigma:g} (32 x 224 x 224)"] = normalise(maps)
    thresholds = make_cam_thresholds(0.01)
    for name, cams in cases.items():
        wrong, total = compare_with_reference(cams, thresholds)
        print(f"{name}: {wrong} of {total} boxes differ from box_from_cam (thresholds 0:1:0.01)")


if __name__ == "__main__":
    _main()
