"""Training: recipes, the resolved run config, the optimizer, the schedule, distribution and the
fit loop wiring behind ``python training/fit.py``.

The pieces, each usable on its own:

* ``RECIPES``: the default hyperparameters per dataset (one table; the README quotes it).
* ``TrainConfig``: every setting of a run, resolved against the recipe and written to
  ``RUN_DIR/config.json``.
* ``method_hyperparameters()``: the method layers' hyperparameters, read from the layer
  signatures (the CLI flags ``--drop-rate`` ... ``--top-k`` are derived from it: one source of
  truth).
* ``ScaledSGD``: SGD with momentum, PyTorch-style (coupled) weight decay, and a learning-rate
  multiplier on chosen variables (new layers train at 10x the lr of pretrained ones).
* ``step_decay``: the step learning-rate decay of the reference recipes.
* ``make_strategy``: MirroredStrategy (TensorFlow) or ``keras.distribution.DataParallel``
  over the devices of every process (JAX; several hosts: ``keras_dgdm.distributed``) —
  existing engines only.
* ``train(config)``: build, fit (resumable), evaluate, write figures and export.

A run directory holds::

    RUN_DIR/config.json      the resolved TrainConfig (+ the method layers' full configs)
    RUN_DIR/backup/          keras.callbacks.BackupAndRestore state (resumption)
    RUN_DIR/checkpoints/     last.keras, overwritten at the end of every epoch
    RUN_DIR/logs/            TensorBoard
    RUN_DIR/log.csv          one row per finished epoch (loss, accuracy, val_accuracy, lr)
    RUN_DIR/model.keras      the trained model
    RUN_DIR/eval/val/, RUN_DIR/eval/test/   metrics.json + heatmaps.png per split (test: also
                                            drop_stats.json, what the method layers erase)
    RUN_DIR/metrics.json     the test metrics (at the CAM threshold chosen on val)

Resumption: rerunning the same command (same run directory) restores the last finished
epoch's weights, optimizer state and layer random state through BackupAndRestore, and the
training data of epoch ``e`` is always the pipeline seeded with ``seed + e`` — so an
interrupted-and-resumed run ends with the same weights as an uninterrupted one (CPU, fixed
seed). Rerunning a finished run trains nothing and re-evaluates; ``--epochs`` larger than a
finished run's continues it.

BatchNorm momentum (``bn_momentum``, default 0.9 in every recipe): Keras' default 0.99 makes
the moving statistics lag far behind the weights on short runs (a few hundred steps), so
evaluation accuracy collapses while training accuracy is near 100 %. 0.9 is what the
reference PyTorch recipes train with (PyTorch's ``momentum=0.1`` is Keras' 0.9). Backbones
without BatchNorm (vgg16) are unaffected.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import json
import logging
import os
from typing import Any, Optional

import keras
import numpy as np

from keras_dgdm import distributed

# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------

#: Default hyperparameters per dataset. SGD with momentum 0.9, new layers at ``lr_multiplier``
#: (10x) the lr of pretrained ones, step decay by ``lr_decay_rate`` every ``lr_decay_epochs``
#: epochs, coupled weight decay, as in the reference recipes (ADL, clovaai/wsolevaluation:
#: CUB 50 epochs decayed every 15, ILSVRC 10 epochs decayed every 3, classifier lr ratio 10).
#: ``synthetic`` is the CPU recipe of ``python training/fit.py`` with no arguments: small_vgg
#: at 96x96 fine-tuned from the bundled ``synthetic_source`` weights (the stand-in for ImageNet
#: pretraining, ``training/pretrain.py``), the method layers after block2_pool and block3_pool
#: (chosen on val, EXPERIMENTS.md), 5 epochs with the lr step after 4.
RECIPES: dict[str, dict[str, Any]] = {
    "synthetic": dict(
        backbone="small_vgg", method="dgdm", weights="synthetic_source", image_size=96,
        batch_size=32, epochs=5, lr=0.005, lr_multiplier=10.0, lr_decay_epochs=4,
        lr_decay_rate=0.1, momentum=0.9, weight_decay=5e-4, bn_momentum=0.9, freeze_bn=False,
        insert_at=["block2_pool", "block3_pool"],
    ),
    "cub": dict(
        backbone="vgg16", method="dgdm", weights="imagenet", image_size=224, batch_size=32,
        epochs=50, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=15, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=5e-4, bn_momentum=0.9, freeze_bn=False,
    ),
    "cars": dict(
        backbone="resnet50", method="dgdm", weights="imagenet", image_size=224, batch_size=32,
        epochs=50, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=15, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=1e-4, bn_momentum=0.9, freeze_bn=False,
    ),
    "ilsvrc": dict(
        backbone="resnet50", method="dgdm", weights="imagenet", image_size=224, batch_size=64,
        epochs=10, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=3, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=1e-4, bn_momentum=0.9, freeze_bn=False,
    ),
    "metadata": dict(
        backbone="vgg16", method="dgdm", weights="imagenet", image_size=224, batch_size=32,
        epochs=50, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=15, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=5e-4, bn_momentum=0.9, freeze_bn=False,
    ),
}

from keras_dgdm.models import METHODS  # noqa: E402  (one list of methods, defined by the builder)
STRATEGIES = ("auto", "none", "mirrored", "multiworker", "data_parallel")

# Layer-constructor arguments that are not hyperparameters of the method.
_NOT_HYPERPARAMETERS = ("self", "seed", "data_format", "kwargs", "name", "dtype")


def _choices_error(what, value, choices):
    return ValueError(f"Unknown {what} {value!r}; choose one of: {', '.join(choices)}.")


def method_hyperparameters() -> dict[str, Any]:
    """The method layers' hyperparameters and their defaults, read from the layer signatures.

    The union over ``keras_dgdm.layers.METHOD_LAYERS`` (DGDM holds all of them), in signature
    order. The CLI derives its flags from this (``drop_rate`` -> ``--drop-rate``), so a new
    layer argument becomes a flag without touching the CLI.

    Returns:
        dict name -> default, e.g. ``{"drop_rate": 0.75, ..., "top_k": None}``.

    Example:
        >>> list(method_hyperparameters())[:2]
        ['drop_rate', 'drop_threshold']
    """
    from keras_dgdm.layers import METHOD_LAYERS

    params: dict[str, Any] = {}
    for cls in sorted(METHOD_LAYERS.values(), key=lambda c: c is not METHOD_LAYERS["dgdm"]):
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name in _NOT_HYPERPARAMETERS or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            params.setdefault(p.name, p.default)
    return params


def method_accepts(method: str) -> tuple[str, ...]:
    """Names of the hyperparameters that ``method``'s layer accepts (``()`` for ``"cam"``)."""
    from keras_dgdm.layers import METHOD_LAYERS

    if method == "cam":
        return ()
    if method not in METHOD_LAYERS:
        raise _choices_error("method", method, METHODS)
    sig = inspect.signature(METHOD_LAYERS[method].__init__).parameters
    return tuple(n for n in sig if n not in _NOT_HYPERPARAMETERS)


def validate_method_kwargs(method: str, method_kwargs: dict) -> dict:
    """Checks hyperparameters against ``method`` by constructing its layer once (cheap).

    Raises ValueError for an unknown method (listing the choices), for a hyperparameter the
    method does not take (naming the ones it does), and — from the layer itself — for an
    out-of-range value. Returns ``method_kwargs`` unchanged.
    """
    from keras_dgdm.layers import METHOD_LAYERS

    if method not in METHODS:
        raise _choices_error("method", method, METHODS)
    accepted = method_accepts(method)
    extra = sorted(set(method_kwargs) - set(accepted))
    if extra:
        flags = ", ".join("--" + e.replace("_", "-") for e in extra)
        takes = ", ".join("--" + a.replace("_", "-") for a in accepted) or "no hyperparameters"
        raise ValueError(f"{flags} does not apply to method {method!r}, which takes {takes}.")
    if method != "cam":
        METHOD_LAYERS[method](**method_kwargs)
    return method_kwargs


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; ``None`` fields take the dataset's ``RECIPES`` value.

    Args:
        dataset: a name of ``keras_dgdm.data.DATASETS`` (synthetic, cub, cars, ilsvrc, metadata).
        data_dir: where the dataset lives (``None``: the loader's default, e.g. tfds' cache).
        data_options: extra keyword arguments for ``keras_dgdm.data.load`` (e.g. sizes of the
            synthetic splits).
        backbone, method, weights ("imagenet", "none" or a weights-file path), insert_at
            (layer names / globs; ``None``: the recipe's, which only the synthetic recipe sets,
            else the backbone's default positions), method_kwargs
            (only the hyperparameters given explicitly; the rest are the layer's / backbone's
            defaults), bn_momentum, freeze_bn: the model (``keras_dgdm.models.build_wsol_model``).
        image_size, batch_size (global, over all replicas), epochs, steps_per_epoch (``None``:
            one pass over the training split), lr (of pretrained layers), lr_multiplier (new
            layers), lr_decay_epochs, lr_decay_rate, momentum, nesterov, weight_decay: training.
        seed: fixes weight init, data order and augmentation and the layers' randomness.
        output_dir, run_name (``None``: derived from dataset/backbone/method/size/seed).
        strategy ("auto", "none", "mirrored", "multiworker", "data_parallel"), devices,
        mixed_precision (``None``/"none", "auto", or a keras policy name), jit (XLA).
        evaluate, cam_curve_interval, eval_batch_size, num_figure_examples: evaluation after
            training (threshold chosen on val, metrics reported on test).
        export, export_dir, export_version: the exported model (saved_models/NAME/VERSION).

    Example:
        >>> cfg = TrainConfig(dataset="synthetic").resolved()
        >>> cfg.backbone, cfg.image_size
        ('small_vgg', 64)
    """

    dataset: str = "synthetic"
    data_dir: Optional[str] = None
    data_options: dict = dataclasses.field(default_factory=dict)
    backbone: Optional[str] = None
    method: Optional[str] = None
    method_kwargs: dict = dataclasses.field(default_factory=dict)
    insert_at: Optional[list] = None
    weights: Optional[str] = None
    bn_momentum: Optional[float] = None
    freeze_bn: Optional[bool] = None
    image_size: Optional[int] = None
    batch_size: Optional[int] = None
    epochs: Optional[int] = None
    steps_per_epoch: Optional[int] = None
    lr: Optional[float] = None
    lr_multiplier: Optional[float] = None
    lr_decay_epochs: Optional[int] = None
    lr_decay_rate: Optional[float] = None
    momentum: Optional[float] = None
    nesterov: bool = False
    weight_decay: Optional[float] = None
    seed: int = 0
    output_dir: str = "runs"
    run_name: Optional[str] = None
    strategy: str = "auto"
    devices: Optional[list] = None
    mixed_precision: Optional[str] = None
    jit: bool = False
    evaluate: bool = True
    cam_curve_interval: float = 0.01
    eval_batch_size: Optional[int] = None
    num_figure_examples: int = 8
    export: bool = True
    export_dir: str = "saved_models"
    export_version: int = 1

    def resolved(self) -> "TrainConfig":
        """A copy with every ``None`` recipe field filled from ``RECIPES[dataset]``.

        Raises ValueError for an unknown dataset, backbone, method or strategy (listing the
        choices) and for out-of-range training settings.
        """
        from keras_dgdm.backbones import list_backbones
        from keras_dgdm.data import DATASETS

        if self.dataset not in DATASETS:
            raise _choices_error("dataset", self.dataset, list(DATASETS))
        recipe = RECIPES.get(self.dataset, RECIPES["metadata"])
        cfg = dataclasses.replace(self)
        for key, value in recipe.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if self.insert_at is None and (cfg.backbone != recipe["backbone"] or cfg.method == "cam"):
            # A recipe's positions are layer names of its own backbone; "cam" inserts nothing.
            cfg.insert_at = None
        if cfg.backbone not in list_backbones():
            raise _choices_error("backbone", cfg.backbone, list_backbones())
        if cfg.method not in METHODS:
            raise _choices_error("method", cfg.method, METHODS)
        if cfg.strategy not in STRATEGIES:
            raise _choices_error("strategy", cfg.strategy, STRATEGIES)
        for name in ("image_size", "batch_size", "epochs", "lr_decay_epochs"):
            if int(getattr(cfg, name)) < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {getattr(cfg, name)}.")
        if cfg.steps_per_epoch is not None and cfg.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None; got {cfg.steps_per_epoch}.")
        for name in ("lr", "lr_multiplier"):
            if not getattr(cfg, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(cfg, name)}.")
        for name in ("momentum", "lr_decay_rate", "weight_decay"):
            v = getattr(cfg, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {v}.")
        if cfg.bn_momentum is not None and not 0 <= cfg.bn_momentum < 1:
            raise ValueError(f"bn_momentum must be in [0, 1) or None; got {cfg.bn_momentum}.")
        if not 0 < cfg.cam_curve_interval < 1:
            raise ValueError(f"cam_curve_interval must be in (0, 1); got {cfg.cam_curve_interval}.")
        if cfg.dataset == "synthetic" and "image_size" not in cfg.data_options:
            # Generate the synthetic images at the training size (no resampling blur).
            cfg.data_options = {**cfg.data_options, "image_size": cfg.image_size}
        if cfg.eval_batch_size is None:
            cfg.eval_batch_size = cfg.batch_size
        if cfg.run_name is None:
            cfg.run_name = f"{cfg.dataset}-{cfg.backbone}-{cfg.method}-{cfg.image_size}px-seed{cfg.seed}"
        validate_method_kwargs(cfg.method, cfg.method_kwargs)
        return cfg

    @property
    def run_dir(self) -> str:
        """``output_dir/run_name``."""
        return os.path.join(self.output_dir, self.run_name)

    @property
    def model_weights(self):
        """``weights`` as build_wsol_model takes it ("none" -> None)."""
        return None if str(self.weights).lower() == "none" else self.weights

    def to_dict(self) -> dict:
        """A JSON-serializable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of ``to_dict``; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}; known: {sorted(names)}.")
        return cls(**d)


# Fields whose change does not make a run directory a different run (resuming with more
# epochs continues training; the rest only affect evaluation, export or speed).
_RESUMABLE_CHANGES = frozenset({
    "epochs", "evaluate", "export", "export_dir", "export_version", "num_figure_examples",
    "eval_batch_size", "cam_curve_interval", "output_dir", "strategy", "devices", "jit",
    "data_dir",
})


def check_run_dir(config: TrainConfig) -> Optional[dict]:
    """Compares ``config`` with the one saved in its run directory, if any.

    Returns the saved config dict (or None for a new run). Raises ValueError naming the
    differing fields when the directory holds a different run (resuming it with other
    hyperparameters would silently mix two runs): pick another ``--output-dir``/``--run-name``.
    """
    path = os.path.join(config.run_dir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)["config"]
    current = config.to_dict()
    differ = sorted(
        k for k in set(saved) | set(current)
        if k not in _RESUMABLE_CHANGES and saved.get(k) != current.get(k)
    )
    if differ:
        detail = "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in differ)
        raise ValueError(
            f"Run directory {config.run_dir} holds a run with other settings ({detail}). "
            "Resume it with the same settings, or pass --run-name / --output-dir for a new run."
        )
    return saved


def write_config(config: TrainConfig, model=None, extra: Optional[dict] = None) -> str:
    """Writes ``RUN_DIR/config.json``: the resolved config, the method layers' full configs
    (every hyperparameter actually used, defaults included) and ``extra``. Returns the path."""
    payload = {"config": config.to_dict(), "keras_version": keras.__version__,
               "backend": keras.backend.backend()}
    if model is not None:
        from keras_dgdm.layers import METHOD_LAYERS

        classes = tuple(METHOD_LAYERS.values())
        payload["method_layers"] = {
            layer.name: layer.get_config() for layer in model.layers if isinstance(layer, classes)
        }
    payload.update(extra or {})
    os.makedirs(config.run_dir, exist_ok=True)
    path = os.path.join(config.run_dir, "config.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, default=str)
    return path


# --------------------------------------------------------------------------------------------
# Optimizer and schedule
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Devices, distribution, precision
# --------------------------------------------------------------------------------------------


def configure_cpu_devices(devices) -> None:
    """Splits the CPU into logical devices when ``devices`` names more than ``/cpu:0``.

    ``--devices /cpu:0,/cpu:1`` runs MirroredStrategy with two replicas on one CPU (how the
    tests and a laptop check multi-replica code). Must run before TensorFlow initialises its
    devices (first op); a no-op on other backends or when nothing beyond /cpu:0 is named.
    """
    if not devices or keras.backend.backend() != "tensorflow":
        return
    indices = []
    for d in devices:
        d = d.strip().lower().replace("device:", "")
        if "/cpu:" in d:
            indices.append(int(d.rsplit(":", 1)[1]))
    if not indices or max(indices) == 0:
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * (max(indices) + 1)
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have <= max(indices):
            raise RuntimeError(
                f"devices {devices} need {max(indices) + 1} logical CPUs, but TensorFlow is "
                f"already initialised with {have}; configure devices before any TF op."
            ) from None


def make_strategy(name: str = "auto", devices=None):
    """Returns a distribution strategy scope object for ``name`` on the current backend.

    TensorFlow: "auto" = ``tf.distribute.MirroredStrategy`` over all visible GPUs when there are
    several, else the default strategy; "mirrored" = MirroredStrategy over ``devices`` (all GPUs
    when None); "none" = the default strategy; "multiworker" is refused (Keras 3's fit under
    MultiWorkerMirroredStrategy is broken upstream; the message names the JAX route). JAX:
    "auto"/"data_parallel"/"mirrored"/"multiworker" set ``keras.distribution.DataParallel`` over
    the JAX devices of every process (``keras_dgdm.distributed``) when there are several.

    Returns:
        an object with ``.scope()`` and ``.num_replicas_in_sync``.
    """
    if name not in STRATEGIES:
        raise _choices_error("strategy", name, STRATEGIES)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if name == "multiworker":
            raise ValueError("--strategy multiworker: " + distributed.MULTIWORKER_ON_TENSORFLOW)
        if name == "mirrored":
            return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
        if name == "data_parallel":
            raise ValueError("strategy 'data_parallel' is the JAX backend's; on TensorFlow use "
                             "'mirrored' or 'multiworker'.")
        if name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if backend == "jax" and name != "none":
        devs = keras.distribution.list_devices()  # every process's devices
        if len(devs) > 1 or name != "auto":
            # Several processes: each feeds its own shard (distributed.shard), not Keras' split.
            keras.distribution.set_distribution(keras.distribution.DataParallel(
                devices=devs, auto_shard_dataset=distributed.process_count() == 1))
            return _NoScope(len(devs))
    elif backend != "tensorflow" and name == "multiworker":
        raise ValueError(f"strategy 'multiworker' needs the JAX backend (now {backend!r}).")
    return _NoScope(1)


class _NoScope:
    def __init__(self, replicas):
        self.num_replicas_in_sync = replicas

    def scope(self):
        return contextlib.nullcontext()


def set_precision(mixed_precision: Optional[str]) -> str:
    """Sets keras' global dtype policy: None/"none" -> float32; "auto" -> mixed_float16 on GPU,
    mixed_bfloat16 on CPU/TPU; or a policy name. Returns the policy name."""
    if mixed_precision in (None, "none", "float32", False):
        policy = "float32"
    elif mixed_precision == "auto":
        policy = "mixed_float16" if _has_gpu() else "mixed_bfloat16"
    else:
        policy = mixed_precision
    try:
        keras.mixed_precision.set_global_policy(policy)
    except ValueError as e:
        raise ValueError(f"mixed_precision {mixed_precision!r} is not a keras dtype policy "
                         "(none, auto, mixed_float16, mixed_bfloat16).") from e
    return policy


def _has_gpu():
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # noqa: BLE001 - device listing is best effort
        return False
    return any("gpu" in str(d).lower() or "cuda" in str(d).lower() for d in devices)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _num_batches(dataset) -> Optional[int]:
    import tensorflow as tf

    n = int(dataset.cardinality())
    if n == int(tf.data.INFINITE_CARDINALITY):
        return None
    if n < 0:
        n = sum(1 for _ in dataset)
    return n


def training_stream(data, config: TrainConfig, start_epoch: int, steps_per_epoch: int,
                    batch_size: Optional[int] = None):
    """The training batches of epochs ``start_epoch .. epochs-1``, epoch ``e`` seeded ``seed+e``.

    Each epoch's order and augmentation depend only on (seed, epoch), never on how many epochs
    this process has already run: that is what makes a resumed run equal an uninterrupted one.
    ``batch_size`` (default ``config.batch_size``): this process's share of a global batch.
    """
    from keras_dgdm.data import train_pipeline

    stream = None
    for epoch in range(start_epoch, config.epochs):
        ds = train_pipeline(data, config.image_size, batch_size or config.batch_size,
                            seed=config.seed + epoch, shuffle=True, repeat=True)
        ds = ds.take(steps_per_epoch)
        stream = ds if stream is None else stream.concatenate(ds)
    return stream


def validation_stream(data, config: TrainConfig):
    """The val batches ``model.fit`` reports ``val_accuracy`` on. On several processes each
    feeds an equal share, whole batches only (the processes step together); None if none."""
    from keras_dgdm.data import eval_pipeline

    if distributed.process_count() == 1:
        return eval_pipeline(data, config.image_size, config.eval_batch_size).map(_to_xy)
    local = distributed.per_process(config.eval_batch_size, "--eval-batch-size")
    share = distributed.shard(data, equal=True)
    batches = share.num_examples // local
    if not batches:
        return None
    return eval_pipeline(share, config.image_size, local).map(_to_xy).take(batches)


def _to_xy(batch):
    return batch["images"], batch["labels"]


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------


class _LearningRateLogger(keras.callbacks.Callback):
    """Adds the lr of pretrained layers used during the epoch to the logs (CSV, TensorBoard)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self._lr


class EpochSeededLayers(keras.callbacks.Callback):
    """Sets every layer ``SeedGenerator`` of the model to ``(seed, epoch * 2**20)`` at the start
    of each epoch.

    A SeedGenerator's state is not part of a model's weights file, so BackupAndRestore cannot
    restore it; making the layers' random stream a function of (seed, epoch) instead of "how
    many steps this process has run" is what lets a resumed run draw the same drop masks as an
    uninterrupted one. Epochs do not share draws while a layer makes fewer than 2**20 draws per
    epoch.
    """

    def on_epoch_begin(self, epoch, logs=None):
        for v in self.model.variables:
            if v.name == "seed_generator_state":
                state = keras.ops.convert_to_numpy(v)
                counter = (int(epoch) << 20) % (2 ** 31)
                v.assign(np.array([state[0], counter], dtype=state.dtype))


def make_callbacks(config: TrainConfig, extra=()):
    """BackupAndRestore, last-epoch checkpoint, CSV log and TensorBoard (when the tensorboard
    package is installed) for ``config.run_dir``."""
    run = config.run_dir
    os.makedirs(os.path.join(run, "checkpoints"), exist_ok=True)
    board = []
    if importlib.util.find_spec("tensorboard") is not None:
        board = [keras.callbacks.TensorBoard(os.path.join(run, "logs"))]
    else:
        logging.getLogger("keras_dgdm.training").warning(
            "TensorBoard logs skipped: the tensorboard package is not installed "
            "(pip install tensorboard); log.csv still records every epoch.")
    return [
        # Keeps its state after training so that a finished run is not retrained on rerun and
        # a larger --epochs continues it.
        keras.callbacks.BackupAndRestore(os.path.join(run, "backup"), delete_checkpoint=False),
        EpochSeededLayers(),
        _LearningRateLogger(),
        keras.callbacks.ModelCheckpoint(os.path.join(run, "checkpoints", "last.keras")),
        keras.callbacks.CSVLogger(os.path.join(run, "log.csv"), append=True),
        *board,
        keras.callbacks.TerminateOnNaN(),
        *extra,
    ]


def finished_epochs(run_dir: str) -> int:
    """Epochs finished in ``run_dir`` according to its BackupAndRestore state (0 if none)."""
    path = os.path.join(run_dir, "backup", "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f).get("epoch", 0))


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def build_model(config: TrainConfig, num_classes: int):
    """``build_wsol_model`` with the config's backbone, method, weights and hyperparameters."""
    from keras_dgdm.models import build_wsol_model

    return build_wsol_model(
        config.backbone, num_classes, method=config.method, weights=config.model_weights,
        input_shape=(config.image_size, config.image_size, 3), insert_at=config.insert_at,
        bn_momentum=config.bn_momentum, freeze_bn=bool(config.freeze_bn), seed=config.seed,
        **config.method_kwargs,
    )


def compile_model(model, config: TrainConfig, steps_per_epoch: int):
    """Compiles ``model`` with ScaledSGD (new layers at ``lr_multiplier`` x lr), step decay,
    sparse categorical cross-entropy on logits and accuracy."""
    from keras_dgdm.models import new_layer_names

    optimizer = ScaledSGD(
        learning_rate=step_decay(config.lr, steps_per_epoch, config.lr_decay_epochs,
                                 config.lr_decay_rate),
        momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay,
        lr_multiplier=config.lr_multiplier,
        scaled_variables=variable_paths(model, new_layer_names(model)),
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=bool(config.jit),
    )
    return model


class SetupError(ValueError):
    """A run cannot start: bad name, hyperparameter, path, data directory or weights.

    Raised by ``train`` before any training step, with the underlying message (which names
    the argument / file and what was expected); the CLI prints it without a traceback.
    """


#: Classes per dataset when fixed (the model is built before the data is touched, so that a
#: failed weights download is reported before a dataset download starts).
NUM_CLASSES = {"cub": 200, "cars": 196, "ilsvrc": 1000}


def _known_num_classes(config: TrainConfig) -> Optional[int]:
    if "num_classes" in config.data_options:
        return int(config.data_options["num_classes"])
    if config.dataset == "synthetic":
        from keras_dgdm.data import synthetic

        return int(inspect.signature(synthetic.generate).parameters["num_classes"].default)
    return NUM_CLASSES.get(config.dataset)


#: Where each dataset comes from and the layout ``--data-dir`` must have.
DATA_HINTS = {
    "cub": "CUB-200-2011: the CUB_200_2011/ folder as distributed (images.txt, "
           "image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, images/; "
           "https://www.vision.caltech.edu/datasets/cub_200_2011/), or no --data-dir to use "
           "tensorflow-datasets' caltech_birds2011 (downloaded on first use)",
    "cars": "Stanford Cars through tensorflow-datasets (cars196): --data-dir is tfds' data_dir "
            "(omit it for tfds' default, downloaded on first use)",
    "ilsvrc": "ILSVRC in the wsolevaluation metadata format (github.com/clovaai/wsolevaluation): "
              "a metadata folder with image_ids.txt, class_labels.txt, image_sizes.txt, "
              "localization.txt and the images under --data-dir",
    "metadata": "a dataset in the wsolevaluation metadata format (github.com/clovaai/"
                "wsolevaluation): image_ids.txt, class_labels.txt, image_sizes.txt, "
                "localization.txt and the images under --data-dir",
}


def _check_data_dir(config: TrainConfig):
    if config.data_dir is not None and config.dataset != "synthetic" \
            and not os.path.isdir(config.data_dir):
        raise FileNotFoundError(
            f"--data-dir {config.data_dir!r} does not exist. Expected "
            f"{DATA_HINTS.get(config.dataset, 'the dataset folder')}."
        )


def _check_weights_path(config: TrainConfig):
    from keras_dgdm.backbones import resolve_weights

    w = config.model_weights
    if w not in (None, "imagenet") and resolve_weights(w, config.backbone) == w \
            and not os.path.exists(w):
        raise FileNotFoundError(
            f"--weights {w!r}: no such file. Pass 'imagenet', 'none' or the path of a weights "
            "file (.weights.h5)."
        )


def _imagenet_unavailable(config: TrainConfig, error: Exception) -> str:
    """The message for a failed ``--weights imagenet`` download, in the flags' words."""
    import re

    cause = error.__cause__ or error
    url = re.search(r"https?://\S+?\.h5", str(cause))
    where = url.group(0) if url else f"the headless ('*_notop.h5') {config.backbone} weights file"
    return (f"--weights imagenet: could not download the ImageNet weights of backbone "
            f"{config.backbone!r} ({type(cause).__name__}: {cause}). Without network access, "
            f"pass --weights none to start from random weights, or download {where} elsewhere "
            "and pass --weights PATH (or copy the file into ~/.keras/models/).")


def prepare(config: TrainConfig):
    """Everything before the first training step; every setup error is raised here.

    Order: resolve and validate the config (names list the choices; hyperparameters go
    through the layer's own validation), check the run directory and the weights path, set
    the seed / precision / strategy, build and compile the model (a failed imagenet download
    says how to pass a local file), then load and validate every split the run will use
    (train, val, and test when evaluating; a missing data directory says where to get the
    data and the layout expected, bad files are reported now, not after training).

    Returns:
        dict with "config" (resolved), "saved" (the run directory's previous config or None),
        "strategy", "policy", "model", "train_data", "val_data", "test_data" (None without
        evaluation), "steps_per_epoch".

    Raises:
        SetupError (a ValueError) carrying the underlying message.
    """
    from keras_dgdm import data as wsol_data

    try:
        # Devices and distribution first: resolving the config builds a layer, which starts the
        # backend (TensorFlow's devices, JAX's), too early for configuring them after it.
        configure_cpu_devices(config.devices)
        strategy = make_strategy(config.strategy, config.devices)
        config = config.resolved()
        if distributed.process_index() > 0:
            config = distributed.worker_view(config)
        saved = check_run_dir(config)
        _check_weights_path(config)
        _check_data_dir(config)
        keras.utils.set_random_seed(config.seed)
        policy = set_precision(config.mixed_precision)
        num_classes = _known_num_classes(config)
        model = None
        if num_classes is not None:
            model = _build_in_scope(config, num_classes, strategy)
        options = dict(config.data_options)
        train_data = wsol_data.load(config.dataset, "train", data_dir=config.data_dir, **options)
        val_data = wsol_data.load(config.dataset, "val", data_dir=config.data_dir, **options)
        test_data = wsol_data.load(config.dataset, "test", data_dir=config.data_dir,
                                   **options) if config.evaluate else None
        if model is None or train_data.num_classes != num_classes:
            keras.utils.set_random_seed(config.seed)
            model = _build_in_scope(config, train_data.num_classes, strategy)
        if distributed.process_count() > 1:
            # Steps counted on the whole split (the same on every process); each process then
            # reads only its shard of the train split (of val: validation_stream).
            distributed.per_process(config.batch_size)
            distributed.per_process(config.eval_batch_size, "--eval-batch-size")
            steps_per_epoch = config.steps_per_epoch or distributed.steps_per_epoch(
                train_data.num_examples, config.batch_size)
            train_data = distributed.shard(train_data)
        else:
            one_epoch = wsol_data.train_pipeline(train_data, config.image_size,
                                                 config.batch_size, seed=config.seed,
                                                 shuffle=True, repeat=False)
            steps_per_epoch = config.steps_per_epoch or _num_batches(one_epoch)
        if not steps_per_epoch:
            raise ValueError(f"The train split of {config.dataset!r} gives no batch of "
                             f"{config.batch_size} images.")
        with strategy.scope():
            compile_model(model, config, steps_per_epoch)
            # Built now: BackupAndRestore restores the optimizer state into these variables.
            model.optimizer.build(model.trainable_variables)
    except SetupError:
        raise
    except (ValueError, FileNotFoundError, NotADirectoryError, RuntimeError) as e:
        raise SetupError(str(e)) from e
    return dict(config=config, saved=saved, strategy=strategy, policy=policy, model=model,
                train_data=train_data, val_data=val_data, test_data=test_data,
                steps_per_epoch=steps_per_epoch)


def _build_in_scope(config: TrainConfig, num_classes: int, strategy):
    with strategy.scope():
        try:
            return build_model(config, num_classes)
        except RuntimeError as e:
            if config.model_weights != "imagenet":
                raise
            raise SetupError(_imagenet_unavailable(config, e)) from e


def train(config: TrainConfig, callbacks=(), verbose: int = 1) -> dict:
    """Trains, evaluates and exports a WSOL model as ``config`` says; resumable.

    Every setup error comes before training starts (``prepare``). After fitting: the val
    split chooses the CAM threshold (``best_cam_threshold``), the test split is reported at it
    (``*_at_fixed``) and at its own best threshold, ``heatmaps.png`` figures are written, and
    the model is exported with the val threshold.

    Args:
        config: a TrainConfig (resolved here).
        callbacks: extra keras callbacks (run after the run's own).
        verbose: keras fit verbosity (1: progress bar).

    Returns:
        dict with "run_dir", "config" (resolved), "model" (the keras model), "history",
        "epochs_done", "metrics" (test), "val_metrics", "cam_threshold", "export_path",
        "train_accuracy" and "val_accuracy" (last finished epoch, from log.csv).

    Raises:
        SetupError: bad settings, paths, data or weights (nothing trained yet).

    Example:
        >>> result = train(TrainConfig(dataset="synthetic", epochs=1))
        >>> result["metrics"]["top1_loc"]
    """
    from keras_dgdm import data as wsol_data

    ctx = prepare(config)
    config, model = ctx["config"], ctx["model"]
    train_data, val_data = ctx["train_data"], ctx["val_data"]
    steps_per_epoch = ctx["steps_per_epoch"]
    if ctx["saved"] is None or ctx["saved"].get("epochs") != config.epochs:
        write_config(config, model, {"dtype_policy": ctx["policy"],
                                     "num_replicas": ctx["strategy"].num_replicas_in_sync,
                                     "steps_per_epoch": steps_per_epoch,
                                     "num_classes": train_data.num_classes,
                                     "class_names": list(train_data.class_names),
                                     **_process_record(config, train_data)})

    start_epoch = finished_epochs(config.run_dir)
    history = {}
    processes = distributed.process_count()
    if start_epoch < config.epochs:
        stream = training_stream(train_data, config, start_epoch, steps_per_epoch,
                                 distributed.per_process(config.batch_size))
        hist = model.fit(stream, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                         validation_data=validation_stream(val_data, config),
                         shuffle=False,  # shuffled per epoch
                         callbacks=make_callbacks(config, callbacks),
                         verbose=verbose if distributed.process_index() == 0 else 0)
        history = {k: [float(x) for x in v] for k, v in hist.history.items()}
    else:
        # Finished before: restore the last epoch's state instead of training again.
        model.load_weights(os.path.join(config.run_dir, "backup", "latest.weights.h5"))
    if processes > 1:
        # Evaluation and export run on this process's devices, the processes disconnected.
        model = distributed.local_model(model, lambda: build_model(config,
                                                                   train_data.num_classes))
    model.save(os.path.join(config.run_dir, "model.keras"))

    result = {"run_dir": config.run_dir, "config": config, "model": model, "history": history,
              "epochs_done": finished_epochs(config.run_dir), "metrics": None,
              "val_metrics": None, "cam_threshold": None, "export_path": None,
              "train_accuracy": None, "val_accuracy": None, "drop_stats": None}
    log = read_csv_log(os.path.join(config.run_dir, "log.csv"))
    if log:
        result["train_accuracy"] = log[-1].get("accuracy")
        result["val_accuracy"] = log[-1].get("val_accuracy")

    if config.evaluate:
        from keras_dgdm import evaluation

        test_data = ctx["test_data"]
        val_metrics = evaluation.evaluate_split(
            model, val_data, config.image_size, config.eval_batch_size,
            os.path.join(config.run_dir, "eval", "val"), split="val",
            cam_curve_interval=config.cam_curve_interval,
            num_figure_examples=config.num_figure_examples)
        threshold = float(val_metrics["best_cam_threshold"])
        metrics = evaluation.evaluate_split(
            model, test_data, config.image_size, config.eval_batch_size,
            os.path.join(config.run_dir, "eval", "test"), split="test",
            cam_curve_interval=config.cam_curve_interval, fixed_cam_threshold=threshold,
            num_figure_examples=config.num_figure_examples)
        evaluation.write_metrics(os.path.join(config.run_dir, "metrics.json"), metrics,
                                 split="test", cam_threshold=threshold,
                                 cam_threshold_from="val", dataset=config.dataset,
                                 model=os.path.join(config.run_dir, "model.keras"))
        result.update(metrics=metrics, val_metrics=val_metrics, cam_threshold=threshold)
        result["drop_stats"] = evaluation.write_drop_statistics(
            model, test_data, config.image_size, config.eval_batch_size,
            os.path.join(config.run_dir, "eval", "test"))

    if config.export:
        threshold = result["cam_threshold"] if result["cam_threshold"] is not None else 0.5
        result["export_path"] = export_model(model, config, threshold,
                                             list(train_data.class_names))
    return result


def _process_record(config: TrainConfig, train_data) -> dict:
    """config.json's record of the processes and, on several, of this one's data shard."""
    count = distributed.process_count()
    if count == 1:
        return {"num_processes": 1}
    index = distributed.process_index()
    return {"num_processes": count, "process_id": index,
            "data_shard": {"train_examples": f"{index}::{count}",
                           "num_train_examples": train_data.num_examples,
                           "batch_size": distributed.per_process(config.batch_size)}}


def export_model(model, config: TrainConfig, cam_threshold: float, class_names=None) -> str:
    """Exports a SavedModel for TF Serving to ``export_dir/run_name/export_version`` with the
    CAM threshold chosen on val (``keras_dgdm.export.export_saved_model``; a rerun of the same
    command overwrites that version). Returns the version directory."""
    from keras_dgdm.export import export_saved_model

    return export_saved_model(model, os.path.join(config.export_dir, config.run_name),
                              cam_threshold=cam_threshold, class_names=class_names,
                              version=int(config.export_version), overwrite=True)


def read_csv_log(path: str) -> list[dict]:
    """Rows of a CSVLogger file as dicts of floats ([] when missing)."""
    import csv

    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        parsed = {}
        for k, v in row.items():
            try:
                parsed[k] = float(v)
            except (TypeError, ValueError):
                parsed[k] = v
        out.append(parsed)
    return out


__all__ = [
    "RECIPES", "METHODS", "NUM_CLASSES", "DATA_HINTS", "SetupError", "prepare", "STRATEGIES", "TrainConfig", "ScaledSGD", "variable_paths",
    "step_decay", "method_hyperparameters", "method_accepts", "validate_method_kwargs",
    "configure_cpu_devices", "make_strategy", "set_precision", "make_callbacks", "EpochSeededLayers",
    "training_stream", "finished_epochs", "build_model", "compile_model", "train",
    "export_model", "read_csv_log", "check_run_dir", "write_config",
]
