"""SavedModel export for TF Serving: class probabilities, CAMs and boxes as serving signatures.

``export_saved_model(model, path, cam_threshold=...)`` writes a TensorFlow SavedModel (TF Serving
layout ``saved_models/NAME/VERSION/``) that answers "what is in this image, and where" without
keras_dgdm or any client-side preprocessing (the backbone preprocessing is inside the model,
which takes raw RGB pixels in [0, 255]). Signatures (all outputs have the batch dimension N
first, so TF Serving's REST row format, ``{"instances": [...]}``, works for every one):

=====================  ===============================  =========================================
signature              inputs                           outputs
=====================  ===============================  =========================================
serving_default        images float32 (N, H, W, 3)      probabilities (N, K), top_k_classes
                                                        int32 (N, k), top_k_scores (N, k),
                                                        top_k_class_names string (N, k);
                                                        k = num_top_classes
cam                    images                           cams float32 (N, H, W) in [0, 1] (CAM of
                                                        the predicted class), classes int32 (N,),
                                                        scores (N,) (its probability),
                                                        class_names (N,), boxes int32 (N, 4)
cam_for_class          images, class_ids int32 (N,)     the same for the given classes
serving_bytes          image_bytes string (N,)          serving_default's + image_sizes
cam_bytes              image_bytes                      cam's + image_sizes, boxes_in_image
cam_for_class_bytes    image_bytes, class_ids           cam_for_class's + image_sizes,
                                                        boxes_in_image
=====================  ===============================  =========================================

* ``H, W`` is the model's input size; ``images`` of another shape, or outside [0, 255], fail with
  a message saying what was expected. ``image_bytes`` are encoded JPEG / PNG / GIF / BMP files
  (TF Serving's REST API takes them as ``{"b64": "..."}``), decoded to RGB
  (``tf.io.decode_image(channels=3, expand_animations=False)``) and resized to ``H x W`` inside
  the graph exactly like ``keras_dgdm.data.pipeline``'s evaluation pipeline
  (``tf.image.resize(..., antialias=True)``, bilinear, no crop); anything else fails with a
  message naming the offending element.
* ``boxes`` are ``(x0, y0, x1, y1)`` in pixels of the ``H x W`` model input with the conventions
  of ``keras_dgdm.boxes`` (inclusive corners, the reference's
  ``x1 = min(x + w, W - 1)``), from the CAM at the model's CAM threshold
  (``keras_dgdm.boxes.graph.boxes_from_cams``, equal to ``keras_dgdm.boxes.box_from_cam``).
  ``image_sizes`` is ``(height, width)`` of each decoded image and ``boxes_in_image`` the box
  mapped back to it with the reference's int-truncation rule (``keras_dgdm.boxes.scale_boxes``).
* The CAM threshold is a float64 variable ``cam_threshold`` of the SavedModel; it and the class
  names, input size and signature list are also in ``assets/wsol_serving.json``.

The DGDM / ADL layers are identity at inference and leave no op in the exported graph (the
model is traced with ``training=False``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np

from keras_dgdm.boxes.graph import boxes_from_cams
from keras_dgdm.cam import build_cam_model
from keras_dgdm.metrics import DEFAULT_CAM_THRESHOLD
from keras_dgdm.models import cam_layers

METADATA_FILE = "wsol_serving.json"
SIGNATURES = (
    "serving_default", "cam", "cam_for_class", "serving_bytes", "cam_bytes",
    "cam_for_class_bytes",
)
# First bytes of the formats tf.io.decode_image reads.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _check_threshold(cam_threshold):
    try:
        value = float(cam_threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(cam_threshold, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"cam_threshold must be a number in [0, 1]; got {cam_threshold!r}.")
    return value


def _resolve_path(path, version, overwrite):
    """The version directory to write: ``path`` itself, or ``path/version``."""
    path = os.fspath(path)
    if version is None:
        leaf = os.path.basename(os.path.normpath(path))
        if not re.fullmatch(r"[0-9]+", leaf):
            raise ValueError(
                f"path must be a TF Serving version directory ending in an integer, e.g. "
                f"'saved_models/NAME/1'; got {path!r}. Pass the model's base directory with "
                f"version=N to write {os.path.join(path, '<N>')!r}."
            )
        target = path
    else:
        if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 0:
            raise ValueError(f"version must be an int >= 0 (TF Serving version); got {version!r}.")
        target = os.path.join(path, str(int(version)))
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        if not overwrite:
            raise FileExistsError(
                f"{target!r} already exists; TF Serving does not reload a version in place. "
                "Export to a new version number, or pass overwrite=True."
            )
    return target


def export_saved_model(
    model,
    path,
    cam_threshold=DEFAULT_CAM_THRESHOLD,
    class_names=None,
    num_top_classes=5,
    image_size=None,
    version=None,
    overwrite=False,
):
    """Exports a WSOL model as a SavedModel with classification and CAM / box signatures.

    See the module docstring for the signatures, their inputs and outputs.

    Args:
        model: a model built by ``keras_dgdm.build_wsol_model`` (raw RGB [0, 255] in, float32
            logits out, static input size).
        path: the version directory to write, ``saved_models/NAME/VERSION`` (what TF Serving
            loads from ``--model_base_path=saved_models/NAME``); with ``version`` given, the
            model's base directory ``saved_models/NAME`` instead.
        cam_threshold: the CAM threshold of the ``boxes`` outputs, in [0, 1]. Pass the one
            chosen on validation data (``training/fit.py`` passes the val split's
            ``best_cam_threshold``); the default, ``keras_dgdm.metrics.DEFAULT_CAM_THRESHOLD``,
            is the evaluator's.
        class_names: optional list of K class names (default ``"0" .. "K-1"``).
        num_top_classes: classes in ``serving_default``'s ``top_k_*`` outputs (clipped to K).
        image_size: optional ``(height, width)``; must equal the model's input size (the size
            ``image_bytes`` are resized to). ``None``: the model's.
        version: optional int; when given, ``path`` is the base directory and the export goes
            to ``path/version``.
        overwrite: replace an existing non-empty version directory (default: refuse).

    Returns:
        The version directory written (a str).

    Raises:
        ValueError: a model without the CAM layers or static input size, a bad threshold,
            class_names of the wrong length, a bad num_top_classes / image_size / path /
            version.
        FileExistsError: the version directory exists and ``overwrite`` is False.
        RuntimeError: the Keras backend is not TensorFlow.

    Example:
        >>> model = build_wsol_model("small_vgg", 3, weights=None, input_shape=(64, 64, 3))
        >>> export_saved_model(model, "saved_models/toy", cam_threshold=0.25, version=1)
        'saved_models/toy/1'
        >>> # python: tf.saved_model.load('saved_models/toy/1').signatures['cam'](images=x)
    """
    import tensorflow as tf  # deferred: load_metadata and the checks need no TensorFlow

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "export_saved_model needs the TensorFlow backend (KERAS_BACKEND=tensorflow); the "
            f"current backend is {keras.backend.backend()!r}. Save the weights, then export "
            "them from a TensorFlow-backend process."
        )
    threshold = _check_threshold(cam_threshold)
    _, classifier = cam_layers(model)  # raises a clear error for a non-WSOL model
    num_classes = int(classifier.units)
    input_shape = tuple(model.inputs[0].shape[1:])
    if len(input_shape) != 3 or input_shape[2] != 3 or None in input_shape[:2]:
        raise ValueError(
            f"model must take (N, H, W, 3) images with a static H, W; got input shape "
            f"{(None,) + input_shape}."
        )
    height, width = int(input_shape[0]), int(input_shape[1])
    if image_size is not None and tuple(int(s) for s in image_size) != (height, width):
        raise ValueError(
            f"image_size must be the model's input size {(height, width)} (or None); got "
            f"{tuple(image_size)!r}."
        )
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have one name per class ({num_classes}); got {len(class_names)}."
        )
    if isinstance(num_top_classes, bool) or not isinstance(num_top_classes, (int, np.integer)) \
            or num_top_classes < 1:
        raise ValueError(f"num_top_classes must be a positive int; got {num_top_classes!r}.")
    top_k = min(int(num_top_classes), num_classes)
    target = _resolve_path(path, version, overwrite)

    cam_model = build_cam_model(model)
    class_cam_model = build_cam_model(model, with_class_ids=True)
    metadata = {
        "format": "keras_dgdm WSOL serving model",
        "cam_threshold": threshold,
        "class_names": class_names,
        "num_classes": num_classes,
        "image_size": [height, width],
        "num_top_classes": top_k,
        "signatures": list(SIGNATURES),
        "images": "float32 (N, H, W, 3) raw RGB in [0, 255] at image_size",
        "image_bytes": "string (N,) encoded JPEG / PNG / GIF / BMP (REST: {\"b64\": ...})",
        "boxes": "int32 (x0, y0, x1, y1), inclusive corners, pixels of the H x W input; "
        "x1 = min(x + w, W - 1) (reference wsolevaluation rule)",
    }
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    # Written next to the target, then renamed: TF Serving never sees a half-written version.
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        meta_path = os.path.join(staging, METADATA_FILE)
        with open(meta_path, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
        module = _ServingModule(
            model, cam_model, class_cam_model, (height, width), threshold, class_names, top_k,
            meta_path,
        )
        saved = os.path.join(staging, "saved_model")
        tf.saved_model.save(module, saved, signatures=module.signatures())
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(saved, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _serving_module_class():
    import tensorflow as tf  # deferred: as in export_saved_model

    class ServingModule(tf.Module):
        """tf.Module holding the model(s), the CAM threshold and the signature functions."""

        def __init__(self, model, cam_model, class_cam_model, size, threshold, class_names,
                     top_k, metadata_path):
            super().__init__(name="wsol_serving")
            self.model = model
            self.cam_model = cam_model
            self.class_cam_model = class_cam_model
            self.height, self.width = size
            self.num_classes = len(class_names)
            self.top_k = top_k
            self.cam_threshold = tf.Variable(
                threshold, dtype=tf.float64, trainable=False, name="cam_threshold"
            )
            self.class_names = tf.Variable(class_names, dtype=tf.string, trainable=False,
                                           name="class_names")
            self.metadata = tf.saved_model.Asset(metadata_path)

        # ---- input checks (messages say what was expected) -------------------------------
        def _check_images(self, images):
            h, w = self.height, self.width
            shape = tf.shape(images)
            ok = tf.equal(tf.rank(images), 4)
            expected = tf.constant([h, w, 3], tf.int32)
            ok = tf.logical_and(ok, tf.reduce_all(tf.equal(
                tf.pad(shape, [[0, 4]])[1:4], expected)))
            checks = [tf.debugging.Assert(ok, [
                f"images must be float32 with shape [N, {h}, {w}, 3] (raw RGB, the model's "
                f"input size; send other sizes through the *_bytes signatures); got shape",
                shape,
            ], summarize=8)]
            with tf.control_dependencies(checks):
                images = tf.ensure_shape(tf.identity(images), [None, h, w, 3])
            in_range = tf.logical_and(tf.reduce_all(images >= 0.0), tf.reduce_all(images <= 255.0))
            finite = tf.reduce_all(tf.math.is_finite(images))
            checks = [tf.debugging.Assert(tf.logical_and(in_range, finite), [
                "images must be raw RGB values in [0, 255] (the preprocessing is inside the "
                "model); got min / max",
                tf.reduce_min(images), tf.reduce_max(images),
            ], summarize=8)]
            with tf.control_dependencies(checks):
                return tf.identity(images)

        def _check_class_ids(self, class_ids, n):
            class_ids = tf.cast(class_ids, tf.int32)
            checks = [
                tf.debugging.Assert(tf.logical_and(
                    tf.equal(tf.rank(class_ids), 1),
                    tf.equal(tf.size(class_ids), n)), [
                    "class_ids must be int32 with shape [N], one class per image; got shape",
                    tf.shape(class_ids), "for N =", n,
                ], summarize=8),
                tf.debugging.Assert(tf.reduce_all(tf.logical_and(
                    class_ids >= 0, class_ids < self.num_classes)), [
                    f"class_ids must be in [0, {self.num_classes}); got", class_ids,
                ], summarize=8),
            ]
            with tf.control_dependencies(checks):
                # identity, not reshape: a reshape of a rank-1 tensor is removed by the graph
                # optimizer, and the checks' ordering with it (the gathers would fail first).
                return tf.identity(class_ids)

        def _decode(self, image_bytes):
            image_bytes = tf.reshape(image_bytes, [-1])
            ok = tf.zeros_like(image_bytes, dtype=tf.bool)
            for magic in _MAGIC:
                ok = tf.logical_or(ok, tf.equal(tf.strings.substr(image_bytes, 0, len(magic)),
                                                magic))
            bad = tf.cast(tf.where(tf.logical_not(ok)), tf.int32)
            checks = [tf.debugging.Assert(tf.reduce_all(ok), [
                "image_bytes must be encoded JPEG, PNG, GIF or BMP files (REST: {\"b64\": "
                "...}); these elements are not:", tf.reshape(bad, [-1]),
            ], summarize=8)]
            h, w = self.height, self.width

            def one(data):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
                size = tf.shape(image)[:2]
                resized = tf.image.resize(image, (h, w), antialias=True)
                return tf.clip_by_value(resized, 0.0, 255.0), size

            with tf.control_dependencies(checks):
                images, sizes = tf.map_fn(
                    one, image_bytes,
                    fn_output_signature=(tf.TensorSpec([h, w, 3], tf.float32),
                                         tf.TensorSpec([2], tf.int32)),
                )
            return tf.ensure_shape(images, [None, h, w, 3]), sizes

        # ---- computations ---------------------------------------------------------------
        def _classify(self, images):
            logits = self.model(images, training=False)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            scores, classes = tf.math.top_k(probabilities, k=self.top_k)
            return {
                "probabilities": probabilities,
                "top_k_classes": tf.cast(classes, tf.int32),
                "top_k_scores": scores,
                "top_k_class_names": tf.gather(self.class_names, classes),
            }

        def _cam_outputs(self, out, class_ids=None):
            probabilities = tf.nn.softmax(tf.cast(out["logits"], tf.float32), axis=-1)
            if class_ids is None:
                class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            cams = tf.cast(out["cams"], tf.float32)
            return {
                "cams": cams,
                "classes": class_ids,
                "scores": tf.gather(probabilities, class_ids, batch_dims=1),
                "class_names": tf.gather(self.class_names, class_ids),
                "boxes": tf.cast(boxes_from_cams(cams, self.cam_threshold), tf.int32),
            }

        def _cam(self, images):
            return self._cam_outputs(self.cam_model(images, training=False))

        def _cam_for_class(self, images, class_ids):
            class_ids = self._check_class_ids(class_ids, tf.shape(images)[0])
            out = self.class_cam_model([images, class_ids], training=False)
            return self._cam_outputs(out, class_ids)

        def _with_sizes(self, outputs, sizes):
            outputs["image_sizes"] = sizes
            if "boxes" in outputs:
                # keras_dgdm.boxes.scale_boxes: int(x * new / old), float64, truncation.
                old = tf.constant([self.width, self.height] * 2, tf.float64)
                new = tf.cast(tf.tile(tf.reverse(sizes, [1]), [1, 2]), tf.float64)
                boxes = tf.cast(outputs["boxes"], tf.float64)
                outputs["boxes_in_image"] = tf.cast(tf.math.floor(boxes * new / old), tf.int32)
            return outputs

        # ---- signatures -----------------------------------------------------------------
        def signatures(self):
            # Declared shapes: what `saved_model_cli show` and TF Serving's metadata tell a
            # client; a request of another shape still meets the in-graph checks' messages.
            images = tf.TensorSpec([None, self.height, self.width, 3], tf.float32, name="images")
            image_bytes = tf.TensorSpec([None], tf.string, name="image_bytes")
            class_ids = tf.TensorSpec([None], tf.int32, name="class_ids")

            @tf.function(input_signature=[images])
            def serving_default(images):
                return self._classify(self._check_images(images))

            @tf.function(input_signature=[images])
            def cam(images):
                return self._cam(self._check_images(images))

            @tf.function(input_signature=[images, class_ids])
            def cam_for_class(images, class_ids):
                return self._cam_for_class(self._check_images(images), class_ids)

            @tf.function(input_signature=[image_bytes])
            def serving_bytes(image_bytes):
                decoded, sizes = self._decode(image_bytes)
                return self._with_sizes(self._classify(decoded), sizes)

            @tf.function(input_signature=[image_bytes])
            def cam_bytes(image_bytes):
                decoded, sizes = self._decode(image_bytes)
                return self._with_sizes(self._cam(decoded), sizes)

            @tf.function(input_signature=[image_bytes, class_ids])
            def cam_for_class_bytes(image_bytes, class_ids):
                decoded, sizes = self._decode(image_bytes)
                return self._with_sizes(self._cam_for_class(decoded, class_ids), sizes)

            functions = dict(
                serving_default=serving_default, cam=cam, cam_for_class=cam_for_class,
                serving_bytes=serving_bytes, cam_bytes=cam_bytes,
                cam_for_class_bytes=cam_for_class_bytes,
            )
            # Kept as attributes too, so tf.saved_model.load(path).cam(...) works in Python.
            for name, fn in functions.items():
                setattr(self, name, fn)
            return {name: fn.get_concrete_function() for name, fn in functions.items()}

    return ServingModule


def _ServingModule(*args):
    return _serving_module_class()(*args)


def load_metadata(path):
    """Reads ``assets/wsol_serving.json`` of an exported version directory.

    Args:
        path: the version directory (``saved_models/NAME/VERSION``).

    Returns:
        dict with ``cam_threshold``, ``class_names``, ``image_size``, ``num_top_classes``,
        ``signatures``.

    Example:
        >>> load_metadata("saved_models/toy/1")["cam_threshold"]
        0.25
    """
    file = os.path.join(os.fspath(path), "assets", METADATA_FILE)
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"{file!r} not found: path must be a version directory written by "
            "keras_dgdm.export_saved_model."
        )
    with open(file, encoding="utf-8") as f:
        return json.load(f)
