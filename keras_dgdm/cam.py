"""Class activation maps (CAM), defined once for the whole package.

The definition is the reference protocol's (Zhou et al. 2016; clovaai/wsolevaluation):

1. ``cam[c] = sum_k w[k, c] * F[..., k]``: the last feature map ``F`` (the output of the
   ``cam_features`` layer, i.e. the input of GAP) weighted by the classifier weights of class
   ``c``. The classifier bias adds a constant, which the normalisation removes.
2. Resized to the input image size with bicubic interpolation exactly like
   ``cv2.resize(cam, (W, H), interpolation=cv2.INTER_CUBIC)``: Keys' kernel with ``a = -0.75``,
   half-pixel centres, replicated border. It is done as two small matmuls,
   ``resized = Ry @ cam @ Rx^T``, with interpolation matrices precomputed in numpy
   (``cubic_resize_matrix``): backend-agnostic, SavedModel-friendly, and cheaper than a
   generic resize for these small maps.
3. Min-max normalised per image to [0, 1]. A map that is constant, or has a NaN / inf, becomes
   all zeros (the reference zeroes NaN and constant maps; we also zero infs, and treat a span
   below float32 rounding, ``max - min <= 1e-6 * max(|max|, |min|)``, as constant).

``build_cam_model(model)`` makes an in-graph ``keras.Model`` (images[, class ids]) ->
``{"logits", "cams"}``; ``compute_cams(model, images)`` is the numpy convenience wrapper.
"""
from __future__ import annotations

import dataclasses
import weakref

import keras
import numpy as np
from keras import ops

from keras_dgdm.models import cam_layers

__all__ = [
    "cubic_resize_matrix",
    "resize_cams",
    "normalize_cams",
    "ClassActivationMaps",
    "build_cam_model",
    "cached_cam_model",
    "compute_cams",
    "CAMResult",
]

_CUBIC_A = -0.75  # OpenCV's INTER_CUBIC kernel parameter
_CONSTANT_RTOL = 1e-6


def cubic_resize_matrix(in_size, out_size):
    """The (out_size, in_size) matrix of OpenCV's 1-D bicubic resize (``INTER_CUBIC``).

    Row ``d`` holds the weights of output sample ``d``: source position
    ``s = (d + 0.5) * in_size / out_size - 0.5`` (half-pixel centres), taps
    ``floor(s) - 1 .. floor(s) + 2`` with Keys' cubic kernel (``a = -0.75``), indices clamped to
    ``[0, in_size - 1]`` (replicated border). ``M @ x`` resizes a length-``in_size`` signal;
    for a 2-D map, ``My @ cam @ Mx.T`` equals ``cv2.resize(cam, (out_w, out_h),
    interpolation=cv2.INTER_CUBIC)`` up to float32 rounding.

    Args:
        in_size: source length (positive int).
        out_size: target length (positive int).

    Returns:
        float32 numpy array of shape ``(out_size, in_size)``; each row sums to 1.

    Example:
        >>> cubic_resize_matrix(3, 3)  # same size: the identity
    """
    for arg, value in (("in_size", in_size), ("out_size", out_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{arg}` must be a positive int; got {value!r}.")
    scale = in_size / out_size
    # OpenCV computes the source position and its fraction in float32.
    pos = ((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    base = np.floor(pos)
    x = (pos - base).astype(np.float32)
    a = np.float32(_CUBIC_A)
    one = np.float32(1.0)
    w0 = ((a * (x + one) - 5 * a) * (x + one) + 8 * a) * (x + one) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + one
    w2 = ((a + 2) * (one - x) - (a + 3)) * (one - x) * (one - x) + one
    w3 = one - w0 - w1 - w2
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    for k, w in enumerate((w0, w1, w2, w3)):
        cols = np.clip(base.astype(np.int64) - 1 + k, 0, in_size - 1)
        np.add.at(matrix, (rows, cols), w.astype(np.float64))
    return matrix.astype(np.float32)


def resize_cams(cams, size):
    """Bicubic (cv2 ``INTER_CUBIC``-compatible) resize of a batch of 2-D maps, in keras.ops.

    Args:
        cams: tensor ``(N, h, w)`` with static ``h`` and ``w``.
        size: ``(H, W)`` target size.

    Returns:
        float32 tensor ``(N, H, W)``.

    Example:
        >>> resize_cams(np.ones((1, 7, 7), "float32"), (224, 224)).shape
        (1, 224, 224)
    """
    cams = ops.cast(ops.convert_to_tensor(cams), "float32")
    if len(cams.shape) != 3 or cams.shape[1] is None or cams.shape[2] is None:
        raise ValueError(
            f"`cams` must have shape (N, h, w) with static h and w; got {tuple(cams.shape)}."
        )
    out_h, out_w = (int(s) for s in size)
    ry = ops.convert_to_tensor(cubic_resize_matrix(int(cams.shape[1]), out_h))
    rx_t = ops.convert_to_tensor(cubic_resize_matrix(int(cams.shape[2]), out_w).T)
    return ops.matmul(ops.matmul(ry, cams), rx_t)


def normalize_cams(cams):
    """Per-image min-max normalisation to [0, 1]; constant or non-finite maps become zeros.

    Args:
        cams: tensor ``(N, ...)``; each item ``cams[i]`` is normalised over all its elements.

    Returns:
        float32 tensor of the same shape, values in [0, 1] (min -> 0, max -> 1).

    Example:
        >>> normalize_cams(np.array([[[1., 3.], [2., 5.]]])).numpy()
        array([[[0.  , 0.5 ], [0.25, 1.  ]]], dtype=float32)
    """
    cams = ops.cast(ops.convert_to_tensor(cams), "float32")
    if len(cams.shape) < 2:
        raise ValueError(f"`cams` must have a batch axis and map axes; got {tuple(cams.shape)}.")
    axes = tuple(range(1, len(cams.shape)))
    finite = ops.isfinite(cams)
    all_finite = ops.all(finite, axis=axes, keepdims=True)
    safe = ops.where(finite, cams, ops.zeros_like(cams))
    low = ops.min(safe, axis=axes, keepdims=True)
    high = ops.max(safe, axis=axes, keepdims=True)
    span = high - low
    magnitude = ops.maximum(ops.abs(high), ops.abs(low))
    valid = ops.logical_and(all_finite, span > _CONSTANT_RTOL * magnitude)
    span = ops.where(valid, span, ops.ones_like(span))
    return ops.where(valid, (safe - low) / span, ops.zeros_like(safe))


@keras.saving.register_keras_serializable(package="keras_dgdm")
class ClassActivationMaps(keras.layers.Layer):
    """Class scores at every position -> normalised, resized CAMs of the chosen classes.

    The input ``class_scores`` is the classifier applied at every position of the feature map,
    ``F @ W + b`` (shape ``(N, h, w, K)``); picking class ``c`` gives the CAM of ``c`` plus
    the bias, which normalisation removes. Weightless, float32.

    Args:
        output_size: ``(H, W)`` to resize to (cv2 ``INTER_CUBIC``-compatible), or ``None`` to
            keep the feature-map size.
        normalize: min-max normalise each map to [0, 1] (constant / non-finite -> zeros).
        **kwargs: base layer arguments (``name``; ``dtype`` defaults to float32).

    Call arguments:
        class_scores: ``(N, h, w, K)`` tensor.
        class_ids: ``(N,)`` integer tensor, the class of each image's map.

    Returns:
        ``(N, H, W)`` float32 tensor.

    Example:
        >>> layer = ClassActivationMaps(output_size=(64, 64))
        >>> cams = layer(scores, class_ids)
    """

    def __init__(self, output_size=None, normalize=True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if output_size is not None:
            output_size = tuple(int(s) for s in output_size)
            if len(output_size) != 2 or min(output_size) < 1:
                raise ValueError(
                    f"`output_size` must be (height, width) with positive ints or None; got "
                    f"{output_size!r}."
                )
        self.output_size = output_size
        self.normalize = bool(normalize)

    def call(self, class_scores, class_ids):
        scores = ops.cast(class_scores, "float32")
        if len(scores.shape) != 4:
            raise ValueError(
                f"`class_scores` must have shape (N, h, w, K); got {tuple(scores.shape)}."
            )
        one_hot = ops.one_hot(ops.cast(ops.reshape(class_ids, (-1,)), "int32"), scores.shape[-1])
        cams = ops.einsum("nhwk,nk->nhw", scores, ops.cast(one_hot, "float32"))
        # Constancy is decided on the map itself (resizing a constant map can add rounding).
        flat = ops.logical_or(
            ops.max(cams, axis=(1, 2), keepdims=True) == ops.min(cams, axis=(1, 2), keepdims=True),
            ops.logical_not(ops.all(ops.isfinite(cams), axis=(1, 2), keepdims=True)),
        )
        if self.output_size is not None:
            cams = resize_cams(cams, self.output_size)
        if self.normalize:
            cams = ops.where(flat, ops.zeros_like(cams), normalize_cams(cams))
        return cams

    def compute_output_shape(self, class_scores_shape, class_ids_shape=None):
        size = self.output_size or tuple(class_scores_shape[1:3])
        return (class_scores_shape[0],) + tuple(size)

    def get_config(self):
        config = super().get_config()
        config.update({"output_size": self.output_size, "normalize": self.normalize})
        return config


def build_cam_model(model, with_class_ids=False, normalize=True):
    """An in-graph model: images[, class ids] -> ``{"logits", "cams"}``.

    The CAMs are those of the module docstring, computed inside the graph (usable in a
    SavedModel / serving signature): float32, shape ``(N, H, W)`` = the model's input size,
    values in [0, 1], for the predicted class (argmax of the logits) or for the given classes.

    Args:
        model: a model built by ``keras_dgdm.build_wsol_model`` (static input size).
        with_class_ids: add a second input ``class_ids`` (int32, shape ``(N,)``) choosing the
            class of each map (e.g. the ground truth, for GT-known localisation).
        normalize: min-max normalise the maps (set False to get the resized raw CAM + bias).

    Returns:
        A functional ``keras.Model`` with inputs ``images`` (and ``class_ids``) and a dict of
        outputs ``{"logits": (N, K) float32, "cams": (N, H, W) float32}``. It shares the
        weights of ``model``.

    Example:
        >>> cam_model = build_cam_model(model)
        >>> out = cam_model.predict(images)
        >>> out["cams"].shape  # (N, H, W)
    """
    features_layer, classifier = cam_layers(model)
    if len(model.inputs) != 1:
        raise ValueError(f"build_cam_model needs a single-input model; got {len(model.inputs)}.")
    images = model.inputs[0]
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(
            "build_cam_model needs a static input size (the resize matrices depend on it); got "
            f"input shape {tuple(images.shape)}."
        )
    logits = model.outputs[0]
    # The classifier at every position of the feature map: (N, h, w, K) class scores.
    class_scores = classifier(features_layer.output)
    inputs = [images]
    if with_class_ids:
        class_ids = keras.Input(shape=(), dtype="int32", name="class_ids")
        inputs.append(class_ids)
    else:
        class_ids = ops.argmax(logits, axis=-1)
    cams = ClassActivationMaps(
        output_size=(height, width), normalize=normalize, name="class_activation_maps"
    )(class_scores, class_ids)
    return keras.Model(
        inputs if with_class_ids else images,
        {"logits": logits, "cams": cams},
        name=f"{model.name}_cams",
    )


# model -> {with_class_ids: cam model}: repeated compute_cams calls on one model reuse the CAM
# model (and so its compiled predict function) instead of re-tracing it every call.
_CAM_MODEL_CACHE = weakref.WeakKeyDictionary()


def cached_cam_model(model, with_class_ids=False):
    """``build_cam_model(model, with_class_ids)``, built once per model and reused."""
    try:
        per_model = _CAM_MODEL_CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable / hashable: no caching
        return build_cam_model(model, with_class_ids=with_class_ids)
    if with_class_ids not in per_model:
        per_model[with_class_ids] = build_cam_model(model, with_class_ids=with_class_ids)
    return per_model[with_class_ids]


@dataclasses.dataclass
class CAMResult:
    """What ``compute_cams`` returns.

    Attributes:
        cams: float32 ``(N, H, W)`` in [0, 1].
        logits: float32 ``(N, K)``.
        class_ids: int64 ``(N,)``, the class of each map (given or predicted).
    """

    cams: np.ndarray
    logits: np.ndarray
    class_ids: np.ndarray


def compute_cams(model, images, classes=None, batch_size=32):
    """CAMs of a batch of images, as numpy (see the module docstring for the definition).

    Args:
        model: a model built by ``keras_dgdm.build_wsol_model``.
        images: ``(N, H, W, 3)`` raw RGB in [0, 255], ``H, W`` = the model's input size.
        classes: optional ``(N,)`` ints, the class of each map (e.g. ground truth); default:
            the predicted class.
        batch_size: images per forward pass.

    Returns:
        ``CAMResult(cams, logits, class_ids)``: cams float32 ``(N, H, W)`` in [0, 1], logits
        float32 ``(N, K)``, class_ids int64 ``(N,)``.

    Example:
        >>> result = compute_cams(model, images, classes=labels)
        >>> result.cams.shape
        (N, 224, 224)
    """
    images = np.asarray(images)
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"`images` must have shape (N,) + {expected} (raw RGB in [0, 255]); got "
            f"{images.shape}."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
    num_classes = int(cam_layers(model)[1].units)
    if classes is not None:
        classes = np.asarray(classes).reshape(-1)
        if classes.shape[0] != images.shape[0]:
            raise ValueError(
                f"`classes` must have one entry per image ({images.shape[0]}); got "
                f"{classes.shape[0]}."
            )
        if not np.issubdtype(classes.dtype, np.integer) or (
            classes.size and (classes.min() < 0 or classes.max() >= num_classes)
        ):
            raise ValueError(
                f"`classes` must be ints in [0, {num_classes}); got {classes[:8].tolist()}..."
            )
        cam_model = cached_cam_model(model, with_class_ids=True)
        out = cam_model.predict(
            [images.astype("float32"), classes.astype("int32")], batch_size=batch_size, verbose=0
        )
    else:
        cam_model = cached_cam_model(model, with_class_ids=False)
        out = cam_model.predict(images.astype("float32"), batch_size=batch_size, verbose=0)
    logits = np.asarray(out["logits"], dtype=np.float32)
    class_ids = classes.astype(np.int64) if classes is not None else logits.argmax(-1)
    return CAMResult(np.asarray(out["cams"], dtype=np.float32), logits, class_ids)
