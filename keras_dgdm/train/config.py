"""``TrainConfig``: every setting of a training run, its validation, and its record.

Each field says what it means in its ``metadata["help"]``: the one description, which
``fit.py --help`` prints (``keras_dgdm.train.flags`` makes the command line from the fields).
Fields marked ``recipe`` are ``None`` until ``resolved()`` fills them from the dataset's recipe
(``keras_dgdm.train.recipes``). A resolved config is written to ``RUN_DIR/config.json``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

from keras_dgdm.backbones import list_backbones
from keras_dgdm.data import DATASETS, get_dataset
from keras_dgdm.layers.registry import list_methods, unknown_choice, validate_method_kwargs
from keras_dgdm.train.recipes import recipe_for

#: ``TrainConfig.strategy`` values (``keras_dgdm.train.distribution.make_strategy``).
STRATEGIES = ("auto", "none", "mirrored", "multiworker", "data_parallel")
#: ``TrainConfig.input_pipeline`` values.
INPUT_PIPELINES = ("tf.data", "arrays")


def _field(default: Any = None, help: str = "", group: str = "run", recipe: bool = False,
           **cli):
    """A dataclass field with its description (``help``), its command-line group, whether the
    recipe fills it (``recipe``) and command-line details (``cli``: ``flag``, ``choices``,
    ``kind``)."""
    metadata = dict(help=help, group=group, recipe=recipe, **cli)
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=type(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; ``None`` recipe fields take the dataset's recipe.

    The fields and their meaning: ``python training/fit.py --help`` (or each field's
    ``metadata["help"]``).

    Example:
        >>> cfg = TrainConfig(dataset="synthetic").resolved()
        >>> cfg.backbone, cfg.image_size
        ('small_vgg', 64)
    """

    dataset: str = _field("synthetic", "dataset name", "data", choices=lambda: list(DATASETS))
    data_dir: Optional[str] = _field(
        None, "where the dataset lives (default: the loader's, e.g. tfds' cache)", "data")
    data_options: dict = _field(
        {}, "extra keyword argument of the dataset's loader, e.g. num_images=24 (repeatable)",
        "data", flag="data-option", kind="key_value")
    input_pipeline: str = _field(
        "tf.data", "tf.data: resize to 256/224 of the size, random crop and flip (the reference "
        "protocol); arrays: the split in memory, each epoch shuffled and flipped from (seed, "
        "epoch), no resize or crop (the images must have the model's size; works without "
        "TensorFlow)", "data", choices=lambda: INPUT_PIPELINES)
    image_size: Optional[int] = _field(None, "train / eval image side in pixels", "data", True)
    backbone: Optional[str] = _field(None, "backbone", "model", True,
                                     choices=lambda: list_backbones())
    method: Optional[str] = _field(None, "WSOL method (cam inserts no layer)", "model", True,
                                   choices=lambda: list_methods())
    method_kwargs: dict = _field(
        {}, "the method's hyperparameters given explicitly (the rest are the layer's and "
        "backbone's defaults)", "model", kind="method_kwargs")
    insert_at: Optional[list] = _field(
        None, "comma-separated layer names / globs after which the method layers go (a "
        "recipe's apply to its own backbone only)", "model", True, kind="csv")
    weights: Optional[str] = _field(
        None, "backbone start: imagenet, none, a bundled name or a weights file path", "model",
        True)
    bn_momentum: Optional[float] = _field(None, "BatchNorm momentum", "model", True)
    freeze_bn: Optional[bool] = _field(
        None, "freeze BatchNorm (statistics, scale, offset) while fine-tuning", "model", True)
    batch_size: Optional[int] = _field(
        None, "global batch size (over all replicas and processes)", "training", True)
    epochs: Optional[int] = _field(None, "epochs to train", "training", True)
    steps_per_epoch: Optional[int] = _field(
        None, "batches per epoch (default: one pass over the train split)", "training")
    lr: Optional[float] = _field(None, "learning rate of the pretrained layers", "training", True)
    lr_multiplier: Optional[float] = _field(
        None, "learning-rate factor of the new layers (head, classifier)", "training", True)
    lr_decay_epochs: Optional[int] = _field(None, "step decay period in epochs", "training",
                                            True)
    lr_decay_rate: Optional[float] = _field(None, "step decay factor", "training", True)
    momentum: Optional[float] = _field(None, "SGD momentum", "training", True)
    nesterov: bool = _field(False, "Nesterov momentum", "training")
    weight_decay: Optional[float] = _field(None, "coupled (PyTorch-style) L2 weight decay",
                                           "training", True)
    seed: int = _field(0, "fixes weight init, data order and augmentation and the layers' "
                          "randomness", "training")
    output_dir: str = _field("runs", "runs go to OUTPUT_DIR/RUN_NAME")
    run_name: Optional[str] = _field(None, "run directory name (default: "
                                           "DATASET-BACKBONE-METHOD-SIZEpx-seedSEED)")
    strategy: str = _field(
        "auto", "distribution: auto, none, mirrored (TensorFlow), data_parallel (JAX); "
        "multiworker is refused on TensorFlow (broken upstream): several hosts train with the "
        "JAX backend and --num-processes", choices=lambda: STRATEGIES)
    devices: Optional[list] = _field(
        None, "e.g. /gpu:0,/gpu:1 or /cpu:0,/cpu:1 (two replicas on one CPU)", kind="csv")
    mixed_precision: Optional[str] = _field(
        None, "auto (bf16 on CPU/TPU, fp16 on GPU) or a keras dtype policy name",
        kind="optional_const", const="auto")
    jit: bool = _field(False, "compile with XLA")
    evaluate: bool = _field(True, "evaluate after training (CAM threshold chosen on val, "
                                  "metrics on test)", "evaluation", flag="eval")
    cam_curve_interval: float = _field(0.01, "spacing of the CAM thresholds", "evaluation")
    eval_batch_size: Optional[int] = _field(None, "evaluation batch size (default: "
                                                  "--batch-size)", "evaluation")
    num_figure_examples: int = _field(8, "test images in the heatmap figure", "evaluation")
    num_drop_stats_images: int = _field(256, "test images on which drop_stats.json measures "
                                             "what the method layers erase", "evaluation")
    export: bool = _field(True, "export a SavedModel for TF Serving", "export")
    export_dir: str = _field("saved_models", "exports go to EXPORT_DIR/RUN_NAME/VERSION",
                             "export")
    export_version: int = _field(1, "the export's version folder", "export")

    def resolved(self) -> "TrainConfig":
        """A copy with every ``None`` recipe field filled from the dataset's recipe.

        Raises ValueError for an unknown dataset, backbone, method, strategy or input pipeline
        (listing the choices), a dataset without a recipe, and out-of-range settings.
        """
        spec = get_dataset(self.dataset)
        recipe = recipe_for(self.dataset)
        cfg = dataclasses.replace(self)
        for key, value in recipe.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if self.insert_at is None and (cfg.backbone != recipe["backbone"] or cfg.method == "cam"):
            # A recipe's positions are layer names of its own backbone; "cam" inserts nothing.
            cfg.insert_at = None
        for name, choices in (("backbone", list_backbones()), ("method", list_methods()),
                              ("strategy", STRATEGIES), ("input_pipeline", INPUT_PIPELINES)):
            if getattr(cfg, name) not in choices:
                raise unknown_choice(name.replace("_", " "), getattr(cfg, name), choices)
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
        if spec.name == "synthetic" and "image_size" not in cfg.data_options:
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
        """Inverse of ``to_dict``; a field missing from ``d`` (a run written before the field
        existed) takes its default; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}; known: {sorted(names)}.")
        return cls(**d)


def field_defaults() -> dict[str, Any]:
    """Each TrainConfig field's default (what a config written before a field existed meant)."""
    return {f.name: getattr(TrainConfig(), f.name) for f in dataclasses.fields(TrainConfig)}


__all__ = ["TrainConfig", "STRATEGIES", "INPUT_PIPELINES", "field_defaults"]
