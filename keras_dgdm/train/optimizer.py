"""The optimizer and schedule of the reference recipes: ``ScaledSGD`` (SGD with momentum,
coupled weight decay and a learning-rate multiplier on the new layers) and ``step_decay``.

``import keras_dgdm`` imports this module (not the rest of ``keras_dgdm.train``), so a model
saved with its ``ScaledSGD`` loads after it.
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_dgdm")
class ScaledSGD(keras.optimizers.SGD):
    """SGD whose learning rate is multiplied by ``lr_multiplier`` on chosen variables.

    Keras 3 has no per-layer learning rate; the reference recipes train new layers (head,
    classifier) at 10x the lr of pretrained ones. This SGD scales the lr per variable in
    ``update_step``: variables whose ``path`` is in ``scaled_variables`` step with
    ``learning_rate * lr_multiplier``, the others with ``learning_rate`` (a schedule applies to
    both). Weight decay is PyTorch's coupled L2 (``gradient + weight_decay * variable``, before
    momentum), as in the reference recipes, not Keras' decoupled decay. Written with
    ``keras.ops``: runs on every backend and under tf.distribute.

    Update (momentum ``mu``, lr ``eta_v`` = ``eta * lr_multiplier`` or ``eta``)::

        g = gradient + weight_decay * w
        m = mu * m - eta_v * g
        w = w + m                      (nesterov: w = w + mu * m - eta_v * g)

    Args:
        learning_rate: float or a ``keras.optimizers.schedules`` schedule.
        momentum, nesterov: as ``keras.optimizers.SGD``.
        weight_decay: coupled L2 coefficient (0 disables).
        lr_multiplier: factor on the lr of ``scaled_variables``.
        scaled_variables: ``variable.path`` strings (see ``variable_paths``).
        **kwargs: other ``keras.optimizers.SGD`` arguments (clipnorm, ...).

    Example:
        >>> opt = ScaledSGD(0.01, momentum=0.9, lr_multiplier=10.0,
        ...                 scaled_variables=variable_paths(model, new_layer_names(model)))
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False, weight_decay=0.0,
                 lr_multiplier=10.0, scaled_variables=(), name="scaled_sgd", **kwargs):
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                         weight_decay=None, name=name, **kwargs)
        if not lr_multiplier > 0:
            raise ValueError(f"lr_multiplier must be > 0; got {lr_multiplier}.")
        if weight_decay is None:
            weight_decay = 0.0
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay}.")
        self.lr_multiplier = float(lr_multiplier)
        self.l2_weight_decay = float(weight_decay)
        self.scaled_variables = tuple(str(p) for p in scaled_variables)
        self._scaled_indices = frozenset()

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        wanted = set(self.scaled_variables)
        found = {v.path for v in variables} & wanted
        missing = sorted(wanted - found)
        if missing:
            raise ValueError(
                f"ScaledSGD: scaled_variables {missing[:5]} are not among the optimized "
                f"variables (e.g. {[v.path for v in variables][:5]})."
            )
        self._scaled_indices = frozenset(
            self._get_variable_index(v) for v in variables if v.path in wanted
        )

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._scaled_indices:
            learning_rate = keras.ops.multiply(learning_rate, self.lr_multiplier)
        if self.l2_weight_decay:
            gradient = keras.ops.add(
                keras.ops.cast(gradient, variable.dtype),
                keras.ops.multiply(keras.ops.cast(self.l2_weight_decay, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(weight_decay=self.l2_weight_decay, lr_multiplier=self.lr_multiplier,
                      scaled_variables=list(self.scaled_variables))
        return config


def variable_paths(model, layer_names) -> list[str]:
    """``variable.path`` of every trainable variable of the named layers of ``model``.

    Raises ValueError naming a layer that ``model`` does not have.
    """
    paths = []
    for name in layer_names:
        try:
            layer = model.get_layer(name)
        except ValueError as e:
            raise ValueError(f"Model {model.name!r} has no layer {name!r} to scale the lr of.") from e
        paths.extend(v.path for v in layer.trainable_variables)
    return paths


def step_decay(lr, steps_per_epoch, decay_epochs, decay_rate=0.1):
    """The reference recipes' step schedule: ``lr * decay_rate ** floor(epoch / decay_epochs)``.

    A staircase ``keras.optimizers.schedules.ExponentialDecay`` over optimizer steps
    (serializable, every backend).

    Example:
        >>> s = step_decay(0.1, steps_per_epoch=10, decay_epochs=2)
        >>> round(float(s(19)), 6), round(float(s(20)), 6)
        (0.1, 0.01)
    """
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=float(lr),
        decay_steps=int(steps_per_epoch) * int(decay_epochs),
        decay_rate=float(decay_rate),
        staircase=True,
    )


__all__ = ["ScaledSGD", "variable_paths", "step_decay"]
