"""Backbone registry: name -> how to build it, where to insert layers, where its CAM comes from.

timm-style: ``list_backbones()``, ``get_backbone(name)``, ``register_backbone(Backbone(...))``.
Adding a backbone is one ``Backbone`` entry, not a branch in the model builder; adding a method
(``keras_dgdm.layers.register_method``) needs no backbone entry changed: the method's layers go
to the backbone's default positions unless the entry names others for it.

A backbone's ``build(input_shape, weights)`` returns a functional ``keras.Model`` from the
*preprocessed* image to the CAM feature map (the output of the layer named ``features_layer``).
``keras_dgdm.build_wsol_model`` puts ``BackbonePreprocessing(preprocessing)`` in front of it,
inserts the method's layers after ``positions(method)`` and adds GAP + classifier. The
registered backbones (what they are, their CAM size, their positions) are listed in the
README's "Backbones" table; each entry's ``description`` says it in one line.

Weights (the ``weights`` argument of ``build`` and of ``build_wsol_model``):

* ``"imagenet"``: the keras.applications download (needs network access, or the file already
  in keras' cache ``~/.keras/models/``). A failed download raises ``RuntimeError`` saying what
  failed and how to pass a local file.
* ``None``: random initialisation.
* a path: passed to the ``keras.applications`` constructor with ``include_top=False``, so it is
  the weights file of that headless application model: the official ``*_notop.h5`` file (e.g.
  ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``) or a ``.weights.h5`` saved from
  ``keras.applications.VGG16(include_top=False, ...)``. Layers added after the application
  (``conv6``, the Inception head) are new and randomly initialised. For ``small_vgg`` the path
  is a ``.weights.h5`` of the headless network ``small_vgg_features`` (written by
  ``save_small_vgg_features``); ``conv6`` is new, as on VGG16.
* a bundled name (``BUNDLED_WEIGHTS``): ``"synthetic_source"`` for ``small_vgg``, pretrained on
  the synthetic benchmark's source task (``training/pretrain.py``).
  (To restore a whole trained WSOL model, build it with ``weights=None`` and call
  ``model.load_weights(path)``.)
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping

import keras

from keras_dgdm.layers.registry import METHOD_LAYERS, PLAIN_CAM
from keras_dgdm.rewrite import reconfigure_layers

__all__ = [
    "Backbone",
    "register_backbone",
    "list_backbones",
    "get_backbone",
    "load_application",
    "BUNDLED_WEIGHTS",
    "resolve_weights",
    "small_vgg_features",
    "save_small_vgg_features",
]

#: Weights files that ship with the package, by the name ``weights=`` accepts:
#: ``"synthetic_source"`` is ``small_vgg`` pretrained on the synthetic source task (classes
#: disjoint from the benchmark's; ``python training/pretrain.py`` remakes it), the stand-in for
#: ImageNet weights in the synthetic benchmark.
BUNDLED_WEIGHTS = {
    ("small_vgg", "synthetic_source"): os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "weights",
        "small_vgg_synthetic_source.weights.h5"),
}


def resolve_weights(weights, backbone):
    """``weights`` with a bundled weights name (``BUNDLED_WEIGHTS``) replaced by its file path.

    Example:
        >>> resolve_weights("synthetic_source", "small_vgg").endswith(".weights.h5")
        True
    """
    if isinstance(weights, str) and (backbone, weights) in BUNDLED_WEIGHTS:
        return BUNDLED_WEIGHTS[(backbone, weights)]
    return weights


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One registry entry: everything the model builder needs to know about a backbone.

    Args:
        name: registry name, e.g. ``"vgg16"``.
        build: ``(input_shape, weights) -> keras.Model`` from the preprocessed image to the CAM
            feature map; the model's output must be the output of ``features_layer``.
        preprocessing: ``BackbonePreprocessing`` mode (``"caffe"``, ``"tf"``, ``"torch"``,
            ``"scale"``, ``"none"``).
        insert_after: layer selector (names / glob patterns, see ``keras_dgdm.rewrite``) of
            the default positions of every method's layers.
        drop_threshold: default ``drop_threshold`` for ADL / SAGD / DGDM on this backbone.
        features_layer: name of the layer whose output is the CAM feature map.
        new_layers: names of layers that are not part of the pretrained weights (e.g. ``conv6``);
            they get the larger learning rate in the reference recipes.
        pretrained: whether ``weights="imagenet"`` is available.
        min_input_size: smallest accepted input height / width.
        description: one line for the docs.
        insert_after_by_method: method name -> its own positions where they differ from
            ``insert_after`` (e.g. ADL's recipe on VGG-GAP).

    Example:
        >>> register_backbone(Backbone(name="tiny", build=my_build, preprocessing="scale",
        ...     insert_after=("pool1",), drop_threshold=0.8,
        ...     features_layer="conv2"))
    """

    name: str
    build: Callable[..., keras.Model]
    preprocessing: str
    insert_after: tuple
    drop_threshold: float
    features_layer: str
    new_layers: tuple = ()
    pretrained: bool = True
    min_input_size: int = 32
    description: str = ""
    insert_after_by_method: Mapping[str, tuple] = dataclasses.field(default_factory=dict)

    def positions(self, method):
        """Default insertion selector for ``method`` (an empty tuple for ``"cam"``)."""
        if method == PLAIN_CAM:
            return ()
        return tuple(self.insert_after_by_method.get(method, self.insert_after))


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(backbone, overwrite=False):
    """Adds a ``Backbone`` to the registry and returns it.

    Args:
        backbone: a ``Backbone``.
        overwrite: allow replacing an entry with the same name.

    Returns:
        The registered ``Backbone``.

    Raises:
        ValueError: the name is taken (and ``overwrite`` is False), or the entry is malformed.

    Example:
        >>> register_backbone(dataclasses.replace(get_backbone("vgg16"), name="vgg16_copy"))
    """
    if not isinstance(backbone, Backbone):
        raise TypeError(f"register_backbone expects a Backbone; got {type(backbone).__name__}.")
    if backbone.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"Backbone {backbone.name!r} is already registered; pass overwrite=True to replace it."
        )
    unknown = sorted(set(backbone.insert_after_by_method) - set(METHOD_LAYERS))
    if unknown:
        raise ValueError(
            f"Backbone {backbone.name!r}: insert_after_by_method has unknown methods {unknown}; "
            f"methods are {list(METHOD_LAYERS)}."
        )
    if not 0.0 < float(backbone.drop_threshold) <= 1.0:
        raise ValueError(
            f"Backbone {backbone.name!r}: drop_threshold must be in (0, 1]; "
            f"got {backbone.drop_threshold}."
        )
    _REGISTRY[backbone.name] = backbone
    return backbone


def list_backbones():
    """Names of the registered backbones, sorted.

    Returns:
        A list of strings.

    Example:
        >>> list_backbones()
        ['inception_v3', 'resnet50', 'small_vgg', 'vgg16']
    """
    return sorted(_REGISTRY)


def get_backbone(name):
    """The registered ``Backbone`` called ``name``.

    Args:
        name: a registry name (see ``list_backbones()``).

    Returns:
        The ``Backbone`` entry.

    Raises:
        ValueError: unknown name (the message lists the registered ones).

    Example:
        >>> get_backbone("resnet50").features_layer
        'conv5_block3_out'
    """
    if isinstance(name, Backbone):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"Unknown backbone {name!r}; registered backbones: {list_backbones()}.")
    return _REGISTRY[name]


# ---------------------------------------------------------------------------------------------
# Weights handling shared by the keras.applications backbones.


def _check_weights(weights, backbone, pretrained=True):
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"`weights` must be 'imagenet', None or a path to a weights file; got "
            f"{type(weights).__name__} for backbone '{backbone}'."
        )
    if weights == "imagenet":
        if not pretrained:
            raise ValueError(
                f"Backbone '{backbone}' has no ImageNet weights; use weights=None or the path "
                "of a weights file."
            )
        return
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"`weights`={str(weights)!r} for backbone '{backbone}' is not a file; pass "
            "'imagenet', None or the path of an existing weights file."
        )


def load_application(constructor, input_shape, weights, backbone=None):
    """Builds ``keras.applications.<constructor>(include_top=False, ...)`` with clear errors.

    Args:
        constructor: name of the keras.applications constructor, e.g. ``"VGG16"``.
        input_shape: ``(height, width, 3)``.
        weights: ``"imagenet"``, ``None`` or a path to a weights file of the headless model.
        backbone: registry name, for error messages.

    Returns:
        The headless keras.applications model.

    Raises:
        RuntimeError: the ImageNet weights could not be fetched (the message says how to pass
            a local file instead).
        FileNotFoundError: ``weights`` is a path that does not exist.

    Example:
        >>> base = load_application("VGG16", (32, 32, 3), None)
    """
    backbone = backbone or constructor.lower()
    _check_weights(weights, backbone)
    build = getattr(keras.applications, constructor)
    try:
        return build(include_top=False, weights=weights, input_shape=tuple(input_shape))
    except (ValueError, TypeError):
        raise
    except Exception as err:
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not load the ImageNet weights of backbone '{backbone}' through "
            f"keras.applications.{constructor}(include_top=False, weights='imagenet') "
            f"({type(err).__name__}: {err}). Without network access, fetch the headless "
            "('*_notop.h5') weights file elsewhere and pass weights='/path/to/file.h5' (or "
            "copy it into ~/.keras/models/), or pass weights=None to start from random weights."
        ) from err


# ---------------------------------------------------------------------------------------------
# The registered backbones.


def _build_vgg16(input_shape, weights):
    base = load_application("VGG16", input_shape, weights, "vgg16")
    # VGG-GAP (ADL / wsolevaluation): drop pool5, add conv6 -> 14x14x1024 at 224.
    x = base.get_layer("block5_conv3").output
    x = keras.layers.Conv2D(1024, 3, padding="same", activation="relu", name="conv6")(x)
    return keras.Model(base.input, x, name="vgg16_gap")


def _build_resnet50(input_shape, weights):
    base = load_application("ResNet50", input_shape, weights, "resnet50")
    # Stride-1 last stage (the reference protocol's ResNet50): Keras puts conv5's stride in the
    # first 1x1 conv and in the 1x1 projection shortcut; both become stride 1, keeping weights.
    return reconfigure_layers(
        base, ["conv5_block1_1_conv", "conv5_block1_0_conv"], strides=(1, 1),
        name="resnet50_stride1",
    )


def _inception_stem_and_mixed3(model):
    """Names of the stem's spatial layers and of mixed3's stride-2 layers in keras' InceptionV3.

    The stem is everything up to the second MaxPooling2D (keras auto-names its layers
    ``conv2d``, ``conv2d_1``, ... so they are found by position, not by name).
    """
    stem, mixed3 = [], []
    pools = 0
    in_mixed3 = False
    for layer in model.layers:
        if pools < 2 and isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D)):
            stem.append(layer.name)
            pools += isinstance(layer, keras.layers.MaxPooling2D)
        if layer.name == "mixed2":
            in_mixed3 = True
        elif layer.name == "mixed3":
            in_mixed3 = False
        elif in_mixed3 and tuple(getattr(layer, "strides", (1, 1))) == (2, 2):
            mixed3.append(layer.name)
    return stem, mixed3


def _build_inception_v3(input_shape, weights):
    base = load_application("InceptionV3", input_shape, weights, "inception_v3")
    # wsolevaluation's InceptionV3 CAM (large feature map): cut after Mixed_6e (keras 'mixed7'),
    # Mixed_6a (keras 'mixed3') at stride 1, padded stem -> 28x28 at 224 (keras' own network
    # gives 5x5 at 224, 12x12 after mixed7), then two 3x3 1024 convs.
    x = base.get_layer("mixed7").output
    x = keras.layers.Conv2D(1024, 3, padding="same", activation="relu", name="head_conv1")(x)
    x = keras.layers.Conv2D(1024, 3, padding="same", activation="relu", name="head_conv2")(x)
    model = keras.Model(base.input, x, name="inception_v3_cam")
    stem, mixed3 = _inception_stem_and_mixed3(model)
    model = reconfigure_layers(model, stem + mixed3, padding="same")
    return reconfigure_layers(model, mixed3, strides=(1, 1), name="inception_v3_cam")


def small_vgg_features(input_shape):
    """The headless ``small_vgg``: 4 conv blocks (32-64-128-256, BN + ReLU), pools after 1-3.

    Its weights are what a ``small_vgg`` weights file holds (the ``*_notop`` analogue): the
    backbone adds ``conv6`` (new, randomly initialised) on top, as VGG-GAP does on VGG16.
    """
    inputs = keras.Input(tuple(input_shape), name="input")
    x = inputs
    for block, filters in enumerate((32, 64, 128, 256), start=1):
        for conv in (1, 2):
            name = f"block{block}_conv{conv}"
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
            # momentum 0.9: with keras' default 0.99 the moving statistics of a short CPU run
            # lag far behind and evaluation (inference mode) looks broken.
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
        if block < 4:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="small_vgg_features")


def save_small_vgg_features(model, path):
    """Writes the headless ``small_vgg`` weights of ``model`` (any model holding its layers by
    name, e.g. a trained ``build_wsol_model("small_vgg", ...)``) to ``path`` (.weights.h5).

    Raises ValueError naming a ``small_vgg`` layer that ``model`` lacks.
    """
    features = small_vgg_features(model.input.shape[1:])
    for layer in features.layers:
        if not layer.weights:
            continue
        try:
            source = model.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"{model.name!r} has no small_vgg layer {layer.name!r}.") from None
        layer.set_weights(source.get_weights())
    features.save_weights(path)
    return path


def _build_small_vgg(input_shape, weights):
    bundled = resolve_weights(weights, "small_vgg")
    if bundled != weights and not os.path.isfile(bundled):
        raise FileNotFoundError(
            f"The bundled weights {weights!r} of backbone 'small_vgg' are missing ({bundled}); "
            "remake them with `python training/pretrain.py`.")
    weights = bundled
    _check_weights(weights, "small_vgg", pretrained=False)
    features = small_vgg_features(input_shape)
    if weights is not None:
        features.load_weights(weights)
    x = keras.layers.Conv2D(256, 3, padding="same", activation="relu", name="conv6")(
        features.output)
    return keras.Model(features.input, x, name="small_vgg")


register_backbone(
    Backbone(
        name="vgg16",
        build=_build_vgg16,
        preprocessing="caffe",
        # The paper: "inserted in all the pooling layers and the conv5-3 layer".
        insert_after=("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_conv3"),
        # ADL's VGG-GAP: after pool3, pool4 and conv5-3.
        insert_after_by_method={"adl": ("block3_pool", "block4_pool", "block5_conv3")},
        drop_threshold=0.8,
        features_layer="conv6",
        new_layers=("conv6",),
        min_input_size=32,
        description="VGG-GAP: VGG16 without pool5 + conv6 (3x3, 1024); 14x14 CAMs at 224",
    )
)

register_backbone(
    Backbone(
        name="resnet50",
        build=_build_resnet50,
        preprocessing="caffe",
        # ADL's ResNet50 positions (wsolevaluation _ADL_POSITION = [[], [], [], [0], [0, 2]]):
        # after the first block of stage 4, the first block of stage 5 and the last block.
        insert_after=("conv4_block1_out", "conv5_block1_out", "conv5_block3_out"),
        drop_threshold=0.9,
        features_layer="conv5_block3_out",
        new_layers=(),
        min_input_size=32,
        description="ResNet50 with stride-1 conv5 stage; 14x14 CAMs at 224",
    )
)

register_backbone(
    Backbone(
        name="inception_v3",
        build=_build_inception_v3,
        preprocessing="tf",
        # ADL's InceptionV3 positions (wsolevaluation): after Mixed_5d, Mixed_6e and the last
        # head conv (keras: mixed2, mixed7, head_conv2).
        insert_after=("mixed2", "mixed7", "head_conv2"),
        drop_threshold=0.9,
        features_layer="head_conv2",
        new_layers=("head_conv1", "head_conv2"),
        min_input_size=75,
        description="InceptionV3 to mixed7, stride-1 mixed3, + 2 convs; 28x28 CAMs at 224",
    )
)

register_backbone(
    Backbone(
        name="small_vgg",
        build=_build_small_vgg,
        preprocessing="scale",
        insert_after=("block1_pool", "block2_pool", "block3_pool", "block4_conv2_relu"),
        insert_after_by_method={"adl": ("block2_pool", "block3_pool", "block4_conv2_relu")},
        drop_threshold=0.8,
        features_layer="conv6",
        new_layers=("conv6",),
        pretrained=False,
        min_input_size=8,
        description="small VGG-like CNN (BN), no pretrained weights; 8x8 CAMs at 64x64",
    )
)
