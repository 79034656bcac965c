"""keras-dgdm: weakly supervised object localization with the Dual-attention Guided Dropblock Module.

    from keras_dgdm import DGDM, build_wsol_model

The layers are imported eagerly; everything else is loaded on first use, so that
``import keras_dgdm`` stays light and works on the JAX / PyTorch backends without TensorFlow
(only the tf.data pipelines, tfds loaders and the SavedModel export need TensorFlow).
"""
import importlib

from keras_dgdm.layers import ADL, CAGD, DGDM, METHOD_LAYERS, SAGD

__version__ = "0.1.0"

# public name -> module that defines it (loaded lazily, PEP 562)
_LAZY = {
    "insert_layers": "keras_dgdm.rewrite",
    "list_backbones": "keras_dgdm.backbones",
    "get_backbone": "keras_dgdm.backbones",
    "register_backbone": "keras_dgdm.backbones",
    "build_wsol_model": "keras_dgdm.models",
    "cam_layers": "keras_dgdm.models",
    "compute_cams": "keras_dgdm.cam",
    "build_cam_model": "keras_dgdm.cam",
    "box_from_cam": "keras_dgdm.localization",
    "box_accuracy_curve": "keras_dgdm.metrics",
    "WSOLEvaluator": "keras_dgdm.metrics",
    "export_saved_model": "keras_dgdm.export",
}

__all__ = ["ADL", "CAGD", "DGDM", "SAGD", "METHOD_LAYERS", "data", *_LAZY]


def __getattr__(name):
    if name == "data":  # numpy-only at import; TensorFlow is loaded when a tf.data loader runs
        return importlib.import_module("keras_dgdm.data")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_dgdm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
