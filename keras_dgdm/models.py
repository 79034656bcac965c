"""build_wsol_model(): backbone + WSOL method layers + GAP + classifier, one flat Keras model.

The model takes raw RGB pixels in [0, 255] (NHWC; the backbone's preprocessing is the model's
first layer) and returns float32 logits. Its layout, defined once here:

    images -> "preprocessing" -> backbone (method layers inserted after the selected layers)
           -> FEATURES_LAYER "cam_features" (identity; its output is the CAM feature map)
           -> GAP_LAYER "gap" -> CLASSIFIER_LAYER "classifier" (Dense, float32) -> logits

``keras_dgdm.cam`` reads the CAM from the ``cam_features`` output and the ``classifier`` kernel
(``cam_layers(model)``). Inserted layers are named ``f"{method}_after_{layer_name}"``.
"""
from __future__ import annotations

import keras

from keras_dgdm.backbones import get_backbone, list_backbones
from keras_dgdm.layers.preprocessing import BackbonePreprocessing
from keras_dgdm.layers.registry import METHOD_LAYERS, list_methods, method_accepts, method_layer
from keras_dgdm.rewrite import rewrite_model

__all__ = [
    "FEATURES_LAYER",
    "GAP_LAYER",
    "CLASSIFIER_LAYER",
    "PREPROCESSING_LAYER",
    "METHODS",
    "build_wsol_model",
    "cam_layers",
    "new_layer_names",
    "inserted_layer_names",
]

FEATURES_LAYER = "cam_features"
GAP_LAYER = "gap"
CLASSIFIER_LAYER = "classifier"
PREPROCESSING_LAYER = "preprocessing"
# Arguments of the method layers that the builder sets itself.
_BUILDER_OWNED = ("seed", "data_format")


def __getattr__(name):
    if name == "METHODS":  # every WSOL method, from the method registry (PEP 562: always current)
        return list_methods()
    raise AttributeError(f"module 'keras_dgdm.models' has no attribute {name!r}")


def _check_input_shape(input_shape, spec):
    shape = tuple(input_shape) if input_shape is not None else ()
    if (
        len(shape) != 3
        or shape[-1] != 3
        or not all(isinstance(d, int) and d > 0 for d in shape)
    ):
        raise ValueError(
            f"`input_shape` must be (height, width, 3) with positive ints (NHWC RGB); got "
            f"{input_shape!r}."
        )
    if min(shape[:2]) < spec.min_input_size:
        raise ValueError(
            f"`input_shape`={shape} is too small for backbone '{spec.name}': height and width "
            f"must be at least {spec.min_input_size}."
        )
    return shape


def build_wsol_model(
    backbone,
    num_classes,
    method="dgdm",
    weights="imagenet",
    input_shape=(224, 224, 3),
    insert_at=None,
    bn_momentum=None,
    freeze_bn=False,
    seed=None,
    name=None,
    **method_kwargs,
):
    """Builds a WSOL classifier: backbone + method layers + GAP + float32 classifier.

    Args:
        backbone: a registered backbone name (``keras_dgdm.backbones.list_backbones()``:
            ``"vgg16"``, ``"resnet50"``, ``"inception_v3"``, ``"small_vgg"``) or a ``Backbone``.
        num_classes: number of classes (``Dense(num_classes)`` classifier).
        method: ``"cam"`` (no inserted layer), ``"adl"``, ``"sagd"``, ``"cagd"`` or ``"dgdm"``.
        weights: ``"imagenet"``, ``None`` or a path to a weights file of the headless backbone
            (see ``keras_dgdm.backbones``). To restore a whole trained WSOL model, build it with
            ``weights=None`` and call ``model.load_weights(path)``.
        input_shape: ``(height, width, 3)``; static (the CAM resize matrices depend on it).
        insert_at: layer selector overriding the backbone's default positions for ``method``
            (a layer name, glob pattern, layer class, predicate or list; see
            ``keras_dgdm.rewrite``).
        bn_momentum: when given, the momentum of every ``BatchNormalization`` layer.
        freeze_bn: when True, every ``BatchNormalization`` layer is frozen
            (``trainable=False``): it keeps the pretrained moving statistics, scale and offset
            and normalises with them in training too. For fine-tuning a BN backbone with method
            layers: they change activation statistics in training only (erased blocks, the
            importance map's scaling), so statistics learned under them do not fit inference.
        seed: int seed for the inserted layers; the i-th inserted layer (in model order) gets
            ``seed + i``. ``None``: unseeded.
        name: model name (default ``f"{backbone}_{method}"``).
        **method_kwargs: arguments of the method's layer, e.g. ``drop_rate=0.75``,
            ``drop_threshold=0.8``, ``block_size=3``, ``alpha=0.5``, ``beta=3.0``. When the layer
            has a ``drop_threshold`` and none is given, the backbone's default is used.

    Returns:
        A functional ``keras.Model``: raw RGB images in [0, 255], shape
        ``(batch,) + input_shape`` -> float32 logits ``(batch, num_classes)``.

    Raises:
        ValueError: unknown backbone / method / method argument, bad ``num_classes`` or
            ``input_shape``, or an ``insert_at`` selector that matches no layer.

    Example:
        >>> model = build_wsol_model("small_vgg", num_classes=10, method="dgdm",
        ...                          weights=None, input_shape=(64, 64, 3), seed=0)
        >>> model.output.shape
        (None, 10)
    """
    spec = get_backbone(backbone)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int; got {num_classes!r}.")
    layer_class = method_layer(method)
    input_shape = _check_input_shape(input_shape, spec)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an int or None; got {seed!r}.")
    if bn_momentum is not None and not 0.0 <= float(bn_momentum) < 1.0:
        raise ValueError(f"`bn_momentum` must be in [0, 1); got {bn_momentum!r}.")

    layer_kwargs = dict(method_kwargs)
    if layer_class is None:
        if layer_kwargs:
            raise ValueError(
                f"method='cam' inserts no layer, so it takes no layer arguments; got "
                f"{sorted(layer_kwargs)}."
            )
        if insert_at is not None:
            raise ValueError("method='cam' inserts no layer; `insert_at` must be None.")
    else:
        accepted = list(method_accepts(method))
        for key in layer_kwargs:
            if key not in accepted:
                owned = " (set by build_wsol_model itself)" if key in _BUILDER_OWNED else ""
                raise ValueError(
                    f"Unknown argument {key!r}{owned} for method {method!r} "
                    f"({layer_class.__name__}); accepted: {accepted}."
                )
        if "drop_threshold" in accepted and "drop_threshold" not in layer_kwargs:
            layer_kwargs["drop_threshold"] = spec.drop_threshold

    features_model = spec.build(input_shape, weights)
    out_layer = features_model.layers[-1]
    if out_layer.name != spec.features_layer:
        raise ValueError(
            f"Backbone '{spec.name}': build() must return a model whose output layer is "
            f"features_layer={spec.features_layer!r}; got {out_layer.name!r}."
        )

    images = keras.Input(shape=input_shape, name="images")
    preprocessing = BackbonePreprocessing(spec.preprocessing, name=PREPROCESSING_LAYER)
    counter = iter(range(10**9))

    def make_layer(layer):
        index = next(counter)
        return layer_class(
            **layer_kwargs,
            seed=None if seed is None else seed + index,
            name=f"{method}_after_{layer.name}",
        )

    selector = None
    if layer_class is not None:
        selector = insert_at if insert_at is not None else spec.positions(method)
    features_model = rewrite_model(
        features_model,
        after=selector,
        layer_factory=make_layer if selector else None,
        inputs=images,
        input_layer=preprocessing,
    )
    x = keras.layers.Identity(name=FEATURES_LAYER)(features_model.outputs[0])
    x = keras.layers.GlobalAveragePooling2D(name=GAP_LAYER, dtype="float32")(x)
    logits = keras.layers.Dense(num_classes, name=CLASSIFIER_LAYER, dtype="float32")(x)
    model = keras.Model(images, logits, name=name or f"{spec.name}_{method}")
    # The backbone's layers were also called in the intermediate models the rewriting went
    # through (keras.applications' own, the re-configured one), so `layer.output` would point
    # into those graphs. A copy made from the config owns single-use layers, so
    # `model.get_layer(name).output` works for feature extractors; weights are copied over.
    fresh = keras.Model.from_config(model.get_config())
    fresh.set_weights(model.get_weights())
    model = fresh
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            if bn_momentum is not None:
                layer.momentum = float(bn_momentum)
            if freeze_bn:
                layer.trainable = False
    return model


def cam_layers(model):
    """The (features layer, classifier layer) pair a CAM is computed from.

    Args:
        model: a model built by ``build_wsol_model`` (or one with the same layer names).

    Returns:
        ``(model.get_layer("cam_features"), model.get_layer("classifier"))``.

    Raises:
        ValueError: the model lacks these layers, or the classifier is not a ``Dense`` layer.

    Example:
        >>> features, classifier = cam_layers(model)
        >>> classifier.kernel.shape  # (channels, num_classes)
    """
    names = {layer.name for layer in getattr(model, "layers", [])}
    missing = [n for n in (FEATURES_LAYER, CLASSIFIER_LAYER) if n not in names]
    if missing:
        raise ValueError(
            f"Model '{getattr(model, 'name', model)}' has no layer(s) {missing}: CAMs need a "
            f"model built by keras_dgdm.build_wsol_model (a '{FEATURES_LAYER}' feature map "
            f"followed by '{GAP_LAYER}' and a Dense '{CLASSIFIER_LAYER}')."
        )
    classifier = model.get_layer(CLASSIFIER_LAYER)
    if not isinstance(classifier, keras.layers.Dense):
        raise ValueError(
            f"Layer '{CLASSIFIER_LAYER}' must be a keras.layers.Dense; got "
            f"{type(classifier).__name__}."
        )
    return model.get_layer(FEATURES_LAYER), classifier


def new_layer_names(model):
    """Names of the layers that are not from the pretrained backbone (head convs, classifier).

    These are the layers the reference recipes train with a 10x learning rate. They are the
    classifier plus the layers listed in a registered backbone's ``new_layers`` (e.g. VGG-GAP's
    ``conv6``, the Inception head convs) that hold weights.

    Args:
        model: a model built by ``build_wsol_model``.

    Returns:
        A list of layer names, in model order.

    Example:
        >>> new_layer_names(build_wsol_model("vgg16", 200, weights=None))
        ['conv6', 'classifier']
    """
    cam_layers(model)
    candidates = {CLASSIFIER_LAYER}
    for backbone in list_backbones():
        candidates.update(get_backbone(backbone).new_layers)
    return [l.name for l in model.layers if l.name in candidates and l.weights]


def inserted_layer_names(model):
    """Names of the method layers inserted by ``build_wsol_model``, in model order.

    Args:
        model: a model built by ``build_wsol_model``.

    Returns:
        A list like ``['dgdm_after_block1_pool', ...]`` (empty for method ``"cam"``).

    Example:
        >>> inserted_layer_names(build_wsol_model("vgg16", 2, "adl", weights=None))
        ['adl_after_block3_pool', 'adl_after_block4_pool', 'adl_after_block5_conv3']
    """
    prefixes = tuple(f"{m}_after_" for m in METHOD_LAYERS)
    return [l.name for l in model.layers if l.name.startswith(prefixes)]
