"""The method registry: a WSOL method's name -> its layer class, and its hyperparameters.

``METHOD_LAYERS`` is the one list of methods: the model builder, the backbones, the training
config and the CLI read it. ``"cam"`` (plain CAM, ``PLAIN_CAM``) inserts no layer. A method's
hyperparameters are its layer's constructor arguments, read from the signature: the CLI flags
``--drop-rate`` ... ``--top-k`` come from ``method_hyperparameters()``.
"""
from __future__ import annotations

import inspect
from typing import Any

import keras

from keras_dgdm.layers.adl import ADL
from keras_dgdm.layers.cagd import CAGD
from keras_dgdm.layers.dgdm import DGDM
from keras_dgdm.layers.sagd import SAGD

#: The method that inserts no layer (plain CAM).
PLAIN_CAM = "cam"

#: Method name -> layer class (``register_method`` adds one).
METHOD_LAYERS: dict[str, type] = {"adl": ADL, "sagd": SAGD, "cagd": CAGD, "dgdm": DGDM}

#: Layer-constructor arguments that are not hyperparameters of the method.
NOT_HYPERPARAMETERS = ("self", "seed", "data_format", "kwargs", "name", "dtype")


def list_methods() -> tuple[str, ...]:
    """Every method name: ``"cam"`` first, then ``METHOD_LAYERS`` in registration order."""
    return (PLAIN_CAM, *METHOD_LAYERS)


def unknown_choice(what: str, value, choices) -> ValueError:
    """``ValueError("Unknown WHAT 'VALUE'; choose one of: A, B.")``, the registries' message."""
    return ValueError(f"Unknown {what} {value!r}; choose one of: {', '.join(choices)}.")


def register_method(name: str, layer_class: type, overwrite: bool = False) -> None:
    """Adds a method: ``build_wsol_model(..., method=name)`` inserts ``layer_class`` layers at
    each backbone's default positions, and its constructor arguments become hyperparameters.

    Raises:
        ValueError: ``name`` is ``"cam"`` or already registered (without ``overwrite``), or
            ``layer_class`` is not a ``keras.layers.Layer`` subclass.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ValueError(f"layer_class must be a keras.layers.Layer subclass; got {layer_class!r}.")
    if name == PLAIN_CAM or (name in METHOD_LAYERS and not overwrite):
        raise ValueError(f"Method {name!r} is already registered; pass overwrite=True to replace it.")
    METHOD_LAYERS[name] = layer_class


def method_layer(method: str):
    """The layer class of ``method`` (``None`` for ``"cam"``); ValueError listing the choices
    for an unknown name."""
    if method == PLAIN_CAM:
        return None
    if method not in METHOD_LAYERS:
        raise unknown_choice("method", method, list_methods())
    return METHOD_LAYERS[method]


def method_accepts(method: str) -> tuple[str, ...]:
    """Names of the hyperparameters that ``method``'s layer accepts (``()`` for ``"cam"``)."""
    layer_class = method_layer(method)
    if layer_class is None:
        return ()
    params = inspect.signature(layer_class.__init__).parameters.values()
    return tuple(p.name for p in params if p.name not in NOT_HYPERPARAMETERS
                 and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


def method_hyperparameters() -> dict[str, Any]:
    """Every method's hyperparameters and their defaults, from the layer signatures.

    The union over ``METHOD_LAYERS`` (DGDM's first: it holds all of the built-in ones), in
    signature order.

    Example:
        >>> list(method_hyperparameters())[:2]
        ['drop_rate', 'drop_threshold']
    """
    params: dict[str, Any] = {}
    for cls in sorted(METHOD_LAYERS.values(), key=lambda c: c is not DGDM):
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name in NOT_HYPERPARAMETERS or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            params.setdefault(p.name, p.default)
    return params


def validate_method_kwargs(method: str, method_kwargs: dict) -> dict:
    """Checks hyperparameters against ``method`` by constructing its layer once (cheap).

    Raises ValueError for an unknown method (listing the choices), for a hyperparameter the
    method does not take (naming the ones it does, as flags), and — from the layer itself — for
    an out-of-range value. Returns ``method_kwargs`` unchanged.
    """
    layer_class = method_layer(method)
    accepted = method_accepts(method)
    extra = sorted(set(method_kwargs) - set(accepted))
    if extra:
        flags = ", ".join("--" + e.replace("_", "-") for e in extra)
        takes = ", ".join("--" + a.replace("_", "-") for a in accepted) or "no hyperparameters"
        raise ValueError(f"{flags} does not apply to method {method!r}, which takes {takes}.")
    if layer_class is not None:
        layer_class(**method_kwargs)
    return method_kwargs


__all__ = ["PLAIN_CAM", "METHOD_LAYERS", "list_methods", "register_method", "method_layer",
           "method_accepts", "method_hyperparameters", "validate_method_kwargs",
           "unknown_choice"]
