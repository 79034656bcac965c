"""keras-dgdm: weakly supervised object localization with the Dual-attention Guided Dropblock Module.

    from keras_dgdm import DGDM, build_wsol_model

``import keras_dgdm`` registers every serializable class of the package with Keras (the method
layers, the preprocessing layer, the CAM layer and the ``ScaledSGD`` optimizer), so a saved
``.keras`` model loads after it. Everything else is loaded on first use (PEP 562). Nothing here
imports TensorFlow by itself: with ``KERAS_BACKEND=jax`` or ``torch`` the package works without
TensorFlow (only the tf.data pipelines, the tfds loaders and the SavedModel export need it), and
the numpy-only modules (``keras_dgdm.boxes``, ``keras_dgdm.metrics``,
``keras_dgdm.data.synthetic``) never need a deep-learning backend at all.
"""
import importlib

# Registered serializable classes (keras.saving.register_keras_serializable), imported eagerly.
from keras_dgdm.layers import ADL, CAGD, DGDM, METHOD_LAYERS, SAGD  # noqa: F401
from keras_dgdm.layers.preprocessing import BackbonePreprocessing  # noqa: F401
from keras_dgdm.cam import ClassActivationMaps  # noqa: F401
from keras_dgdm.train.optimizer import ScaledSGD  # noqa: F401

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "insert_layers": "keras_dgdm.rewrite",
    "reconfigure_layers": "keras_dgdm.rewrite",
    "select_layers": "keras_dgdm.rewrite",
    "Backbone": "keras_dgdm.backbones",
    "list_backbones": "keras_dgdm.backbones",
    "get_backbone": "keras_dgdm.backbones",
    "register_backbone": "keras_dgdm.backbones",
    "build_wsol_model": "keras_dgdm.models",
    "cam_layers": "keras_dgdm.models",
    "new_layer_names": "keras_dgdm.models",
    "inserted_layer_names": "keras_dgdm.models",
    "METHODS": "keras_dgdm.models",
    "list_methods": "keras_dgdm.layers.registry",
    "register_method": "keras_dgdm.layers.registry",
    "normalize_cams": "keras_dgdm.cam",
    "resize_cams": "keras_dgdm.cam",
    "compute_cams": "keras_dgdm.cam",
    "build_cam_model": "keras_dgdm.cam",
    "box_from_cam": "keras_dgdm.boxes",
    "best_iou_curve": "keras_dgdm.boxes",
    "cam_thresholds": "keras_dgdm.boxes",
    "box_accuracy_curve": "keras_dgdm.metrics",
    "max_box_acc": "keras_dgdm.metrics",
    "max_box_acc_v2": "keras_dgdm.metrics",
    "pxap": "keras_dgdm.metrics",
    "WSOLEvaluator": "keras_dgdm.metrics",
    "save_grid": "keras_dgdm.viz",
    "RECIPES": "keras_dgdm.train.recipes",
    "TrainConfig": "keras_dgdm.train.config",
    "train": "keras_dgdm.train.loop",
    "evaluate_model": "keras_dgdm.evaluation",
    "export_saved_model": "keras_dgdm.export",
}

__all__ = [
    "ADL", "CAGD", "DGDM", "SAGD", "METHOD_LAYERS", "BackbonePreprocessing",
    "ClassActivationMaps", "ScaledSGD", "data", *_LAZY,
]


def __getattr__(name):
    if name == "data":  # numpy-only at import; TensorFlow is loaded when a tf.data loader runs
        return importlib.import_module("keras_dgdm.data")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_dgdm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
