"""Attention-guided dropout layers: DGDM and its parts (SAGD, CAGD) and the ADL baseline.

All four are weight-free, training-only (exactly the identity at inference), seeded through
``keras.random.SeedGenerator`` and serializable under the ``keras_dgdm`` package.

``METHOD_LAYERS`` maps a WSOL method name to its layer class; method ``"cam"`` (plain CAM)
has no layer.
"""
from keras_dgdm.layers.adl import ADL
from keras_dgdm.layers.cagd import CAGD
from keras_dgdm.layers.dgdm import DGDM
from keras_dgdm.layers.sagd import SAGD

METHOD_LAYERS = {"adl": ADL, "sagd": SAGD, "cagd": CAGD, "dgdm": DGDM}

__all__ = ["ADL", "CAGD", "DGDM", "SAGD", "METHOD_LAYERS"]
