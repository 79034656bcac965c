"""The trainer's former module, kept so that old imports work: it is now ``keras_dgdm.train``
(one module per concern)."""
from keras_dgdm.layers.registry import (  # noqa: F401
    method_accepts,
    method_hyperparameters,
    validate_method_kwargs,
)
from keras_dgdm.train import *  # noqa: F401,F403
from keras_dgdm.train import __all__ as _train_all

__all__ = [*_train_all, "method_accepts", "method_hyperparameters", "validate_method_kwargs"]
