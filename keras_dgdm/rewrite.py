"""Graph rewriting for functional Keras models: insert layers, re-configure layers.

This is how a WSOL method is put into a backbone without re-writing the backbone: take any
functional model (``keras.applications.VGG16``, ``ResNet50``, ``InceptionV3``, your own), say
*after which layers* a new layer goes, and get a new functional model whose layers are the
**same objects** as the source's (weights shared, never re-initialised) plus the inserted ones.

Layer selectors (the ``after`` / ``select`` arguments) take any of these forms:

* a layer name, ``"block3_pool"``;
* a glob pattern (``fnmatch``), ``"block*_pool"``;
* a layer class, ``keras.layers.MaxPooling2D`` (matches instances, subclasses included);
* a predicate, ``lambda layer: layer.name.endswith("_out")``;
* a list / tuple mixing the forms above (their union; every item must match something).

A selector that matches nothing raises ``ValueError`` listing a few of the model's layer names.
Only the model's top-level layers are matched (a nested sub-model counts as one layer), and
``InputLayer`` s are never matched.

The work is done by ``keras.models.clone_model(model, clone_function=lambda l: l,
call_function=...)`` (Keras >= 3.3.3): the identity ``clone_function`` is what keeps the source
weights (the default one re-initialises every layer).
"""
from __future__ import annotations

import fnmatch
import keras

__all__ = ["select_layers", "insert_layers", "reconfigure_layers", "rewrite_model"]


def _candidate_layers(model):
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _few_names(layers, limit=12):
    names = [layer.name for layer in layers]
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}{more}]"


def _match_one(layers, selector):
    if isinstance(selector, str):
        if any(ch in selector for ch in "*?["):
            return [layer for layer in layers if fnmatch.fnmatchcase(layer.name, selector)]
        return [layer for layer in layers if layer.name == selector]
    if isinstance(selector, type):
        if not issubclass(selector, keras.layers.Layer):
            raise TypeError(
                f"A class selector must be a keras.layers.Layer subclass; got {selector!r}."
            )
        return [layer for layer in layers if isinstance(layer, selector)]
    if callable(selector):
        return [layer for layer in layers if selector(layer)]
    raise TypeError(
        "A layer selector must be a layer name, a glob pattern, a keras Layer class, a "
        f"predicate (layer -> bool) or a list of those; got {type(selector).__name__}: "
        f"{selector!r}."
    )


def select_layers(model, selector, argument="after"):
    """Returns the model's top-level layers matched by ``selector``, in model order.

    Args:
        model: a functional ``keras.Model``.
        selector: a layer name, a glob pattern, a ``keras.layers.Layer`` subclass, a predicate
            ``layer -> bool``, or a list / tuple of those (union).
        argument: the argument name used in error messages.

    Returns:
        A list of layers (no duplicates), in the order of ``model.layers``.

    Raises:
        ValueError: when the selector (or one item of a list) matches no layer; the message
            lists a few of the model's layer names.

    Example:
        >>> vgg = keras.applications.VGG16(include_top=False, weights=None)
        >>> [l.name for l in select_layers(vgg, "block[12]_pool")]
        ['block1_pool', 'block2_pool']
    """
    layers = _candidate_layers(model)
    items = list(selector) if isinstance(selector, (list, tuple)) else [selector]
    if not items:
        raise ValueError(f"`{argument}` is an empty list; name at least one layer.")
    chosen = set()
    for item in items:
        matched = _match_one(layers, item)
        if not matched:
            raise ValueError(
                f"`{argument}`={item!r} matches no layer of model '{model.name}'. "
                f"Its layers include {_few_names(layers)}."
            )
        chosen.update(id(layer) for layer in matched)
    return [layer for layer in layers if id(layer) in chosen]


def _check_functional(model, argument="model"):
    if isinstance(model, keras.Sequential):
        raise TypeError(
            f"`{argument}` is a keras.Sequential model; rebuild it as a functional model "
            "(keras.Model(inputs, outputs)) to rewrite it."
        )
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise TypeError(
            f"`{argument}` must be a functional keras.Model (built with keras.Input, like the "
            f"keras.applications models); got {type(model).__name__}."
        )


def rewrite_model(
    model,
    after=None,
    layer_factory=None,
    reconfigure=None,
    config_overrides=None,
    inputs=None,
    input_layer=None,
    name=None,
):
    """Rebuilds a functional model with inserted and/or re-configured layers (the general form).

    ``insert_layers`` and ``reconfigure_layers`` are the everyday entry points; this one does
    both in a single pass and can also put a layer in front of the model input (how
    ``build_wsol_model`` puts the backbone's preprocessing inside the model).

    Args:
        model: a functional ``keras.Model``.
        after: layer selector (see the module docstring): a new layer goes after each selected
            layer; ``None`` inserts nothing.
        layer_factory: ``layer -> keras.layers.Layer``, called once per selected layer (in model
            order) with the selected layer; the returned layer is applied to its output.
        reconfigure: layer selector of layers to replace by a re-configured copy (see
            ``reconfigure_layers``); ``None`` replaces nothing.
        config_overrides: dict of config entries for the re-configured copies, e.g.
            ``{"strides": (1, 1)}``.
        inputs: optional ``keras.Input`` tensor to build the new model on (single-input models
            only); a fresh one like the source's is made when ``None``.
        input_layer: optional layer applied to the input before the source model's layers.
        name: name of the new model (default: the source's).

    Returns:
        A new functional ``keras.Model``. Layers not re-configured are the source's own objects.

    Example:
        >>> vgg = keras.applications.VGG16(include_top=False, weights=None)
        >>> m = rewrite_model(vgg, after="block5_conv3",
        ...                   layer_factory=lambda l: keras.layers.Dropout(0.5, name="drop"))
    """
    _check_functional(model)
    inserted = {}
    if after is not None:
        if layer_factory is None or not callable(layer_factory):
            raise ValueError("`layer_factory` must be a callable layer -> keras Layer.")
        for layer in select_layers(model, after, "after"):
            new_layer = layer_factory(layer)
            if not isinstance(new_layer, keras.layers.Layer):
                raise TypeError(
                    f"`layer_factory` must return a keras.layers.Layer; for layer "
                    f"'{layer.name}' it returned {type(new_layer).__name__}."
                )
            inserted[id(layer)] = new_layer
    replaced = {}
    if reconfigure is not None:
        overrides = dict(config_overrides or {})
        for layer in select_layers(model, reconfigure, "reconfigure"):
            config = layer.get_config()
            unknown = sorted(set(overrides) - set(config))
            if unknown:
                raise ValueError(
                    f"config_overrides {unknown} are not config entries of layer "
                    f"'{layer.name}' ({type(layer).__name__}); it has {sorted(config)}."
                )
            config.update(overrides)
            replaced[id(layer)] = (layer, layer.__class__.from_config(config))

    existing = {layer.name for layer in model.layers}
    new_names = [l.name for l in inserted.values()]
    if input_layer is not None:
        new_names.append(input_layer.name)
    clashes = sorted({n for n in new_names if n in existing or new_names.count(n) > 1})
    if clashes:
        raise ValueError(
            f"New layer names {clashes} clash with each other or with layers of model "
            f"'{model.name}'; give the inserted layers distinct names."
        )

    if inputs is None:
        inputs = keras.tree.map_structure(
            lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name),
            model.input,
        )
    entry = inputs
    if input_layer is not None:
        if len(keras.tree.flatten(inputs)) != 1:
            raise ValueError("`input_layer` needs a model with exactly one input.")
        entry = input_layer(keras.tree.flatten(inputs)[0])
    flat_inputs = keras.tree.flatten(inputs)

    def substitute(value):
        # Tensors that are the new model's input go through `input_layer` first.
        for i, t in enumerate(flat_inputs):
            if value is t:
                return keras.tree.flatten(entry)[i] if input_layer is not None else value
        return value

    def operation_fn(layer):
        if id(layer) in replaced:
            return replaced[id(layer)][1]
        return layer

    source_of_copy = {id(copy): source for source, copy in replaced.values()}
    weights_copied = set()

    def call_function(layer, *args, **kwargs):
        if input_layer is not None:
            args = keras.tree.map_structure(substitute, args)
            kwargs = keras.tree.map_structure(substitute, kwargs)
        outputs = layer(*args, **kwargs)
        source_layer = source_of_copy.get(id(layer), layer)
        if source_layer is not layer and id(layer) not in weights_copied:
            # The copy is built by the call above; now give it the source's weights.
            try:
                layer.set_weights(source_layer.get_weights())
            except ValueError as err:
                raise ValueError(
                    f"Re-configured layer '{source_layer.name}' cannot keep its weights "
                    f"(config_overrides changed their shapes): {err}"
                ) from err
            weights_copied.add(id(layer))
        new_layer = inserted.get(id(source_layer))
        if new_layer is not None:
            if len(keras.tree.flatten(outputs)) != 1:
                raise ValueError(
                    f"Cannot insert after layer '{layer.name}': it has several outputs."
                )
            outputs = new_layer(outputs)
        return outputs

    new_model = keras.models.clone_model(
        model,
        # keras' clone_model wants the input structure of the source model.
        input_tensors=keras.tree.pack_sequence_as(model.input, flat_inputs),
        clone_function=operation_fn,
        call_function=call_function,
    )
    if name is not None and name != new_model.name:
        new_model = keras.Model(new_model.inputs, new_model.outputs, name=name)
    return new_model


def insert_layers(model, after, layer_factory, name=None):
    """Returns a new functional model with a new layer after every layer selected by ``after``.

    The source layers are reused as they are (same objects, so the weights are shared and keep
    their values); each inserted layer receives the selected layer's output and feeds all of
    that layer's consumers (merges such as ResNet's ``Add`` or Inception's ``Concatenate``
    included).

    Args:
        model: a functional ``keras.Model`` (e.g. any ``keras.applications`` model).
        after: layer selector: a layer name, a glob pattern (``"block*_pool"``), a
            ``keras.layers.Layer`` subclass, a predicate ``layer -> bool``, or a list of those.
        layer_factory: ``layer -> keras.layers.Layer``, called once per selected layer (in model
            order). Give the new layers deterministic, distinct names, e.g.
            ``f"dgdm_after_{layer.name}"``, and distinct seeds if they are seeded.
        name: name of the new model (default: the source model's name).

    Returns:
        A new functional ``keras.Model``.

    Raises:
        ValueError: a selector matches no layer (the message lists layer names), or the new
            layers' names clash.

    Example:
        >>> vgg = keras.applications.VGG16(include_top=False, weights=None,
        ...                                input_shape=(32, 32, 3))
        >>> m = insert_layers(vgg, "block*_pool",
        ...                   lambda l: keras.layers.Dropout(0.1, name=f"drop_after_{l.name}"))
        >>> len(m.layers) - len(vgg.layers)
        5
    """
    return rewrite_model(model, after=after, layer_factory=layer_factory, name=name)


def reconfigure_layers(model, select, name=None, **config_overrides):
    """Returns a new model in which the selected layers are re-configured copies keeping weights.

    Each selected layer is replaced by ``type(layer).from_config({**layer.get_config(),
    **config_overrides})`` whose weights are set to the source layer's values (copied, so the
    shapes must not change: strides, padding, dilation, activation are fine; filters are not).
    All other layers are the source's own objects.

    Args:
        model: a functional ``keras.Model``.
        select: layer selector (same forms as in ``insert_layers``).
        name: name of the new model (default: the source model's name).
        **config_overrides: config entries to change, e.g. ``strides=(1, 1)``.

    Returns:
        A new functional ``keras.Model``.

    Raises:
        ValueError: a selector matches nothing, an override is not a config entry of a selected
            layer, or the new configuration changes the weight shapes.

    Example:
        >>> resnet = keras.applications.ResNet50(include_top=False, weights=None,
        ...                                      input_shape=(64, 64, 3))
        >>> m = reconfigure_layers(resnet, ["conv5_block1_1_conv", "conv5_block1_0_conv"],
        ...                        strides=(1, 1))
        >>> m.output.shape  # 4x4 instead of 2x2
        (None, 4, 4, 2048)
    """
    if not config_overrides:
        raise ValueError(
            "reconfigure_layers needs at least one config override, e.g. strides=(1, 1)."
        )
    return rewrite_model(
        model, reconfigure=select, config_overrides=config_overrides, name=name
    )

