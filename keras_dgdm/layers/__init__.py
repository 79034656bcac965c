"""Attention-guided dropout layers: DGDM and its parts (SAGD, CAGD) and the ADL baseline.

All four are weight-free, training-only (exactly the identity at inference), seeded through
``keras.random.SeedGenerator`` and serializable under the ``keras_dgdm`` package.

``METHOD_LAYERS`` (``keras_dgdm.layers.registry``) maps a WSOL method name to its layer
class; method ``"cam"`` (plain CAM) has no layer.
"""
from keras_dgdm.layers.adl import ADL
from keras_dgdm.layers.cagd import CAGD
from keras_dgdm.layers.dgdm import DGDM
from keras_dgdm.layers.registry import (
    METHOD_LAYERS,
    PLAIN_CAM,
    list_methods,
    method_accepts,
    method_hyperparameters,
    method_layer,
    register_method,
    validate_method_kwargs,
)
from keras_dgdm.layers.sagd import SAGD

__all__ = ["ADL", "CAGD", "DGDM", "SAGD", "METHOD_LAYERS", "PLAIN_CAM", "list_methods",
           "method_accepts", "method_hyperparameters", "method_layer", "register_method",
           "validate_method_kwargs"]
