"""The one training loop: ``train(config)`` builds, fits (resumably), evaluates and exports.

``python training/fit.py`` and the sweep of ``training/experiments.py`` both call ``train``;
``model.fit`` is called here only. ``prepare`` does everything before the first step, so every
setup error (a bad name, hyperparameter, path, data or weights) comes before training.

Resumption: rerunning the same config (same run directory) restores the last finished epoch's
weights, optimizer state and layer random state (BackupAndRestore + ``EpochSeededLayers``), and
the training data of epoch ``e`` depends only on (seed, e) (``keras_dgdm.train.inputs``): an
interrupted-and-resumed run ends with the same weights as an uninterrupted one (CPU, fixed
seed). Rerunning a finished run trains nothing and re-evaluates; more ``epochs`` than a
finished run's continues it.
"""
from __future__ import annotations

import importlib.util
import os
import re
import time
from typing import Optional

import keras

from keras_dgdm import evaluation
from keras_dgdm.backbones import resolve_weights
from keras_dgdm.data import get_dataset
from keras_dgdm.models import build_wsol_model, new_layer_names
from keras_dgdm.train import inputs, processes
from keras_dgdm.train.callbacks import make_callbacks
from keras_dgdm.train.config import TrainConfig
from keras_dgdm.train.distribution import configure_cpu_devices, make_strategy, set_precision
from keras_dgdm.train.optimizer import ScaledSGD, step_decay, variable_paths
from keras_dgdm.train.run_dir import check_run_dir, finished_epochs, read_csv_log, write_config


class SetupError(ValueError):
    """A run cannot start: bad name, hyperparameter, path, data directory or weights.

    Raised by ``train`` before any training step, with the underlying message (which names
    the argument / file and what was expected); the CLI prints it without a traceback.
    """


def build_model(config: TrainConfig, num_classes: int):
    """``build_wsol_model`` with the config's backbone, method, weights and hyperparameters."""
    return build_wsol_model(
        config.backbone, num_classes, method=config.method, weights=config.model_weights,
        input_shape=(config.image_size, config.image_size, 3), insert_at=config.insert_at,
        bn_momentum=config.bn_momentum, freeze_bn=bool(config.freeze_bn), seed=config.seed,
        **config.method_kwargs,
    )


def compile_model(model, config: TrainConfig, steps_per_epoch: int):
    """Compiles ``model`` with ScaledSGD (new layers at ``lr_multiplier`` x lr), step decay,
    sparse categorical cross-entropy on logits and accuracy."""
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


def _known_num_classes(config: TrainConfig) -> Optional[int]:
    if "num_classes" in config.data_options:
        return int(config.data_options["num_classes"])
    return get_dataset(config.dataset).num_classes


def _check_paths(config: TrainConfig):
    w = config.model_weights
    if w not in (None, "imagenet") and resolve_weights(w, config.backbone) == w \
            and not os.path.exists(w):
        raise FileNotFoundError(
            f"--weights {w!r}: no such file. Pass 'imagenet', 'none' or the path of a weights "
            "file (.weights.h5)."
        )
    spec = get_dataset(config.dataset)
    if config.data_dir is not None and spec.name != "synthetic" \
            and not os.path.isdir(config.data_dir):
        raise FileNotFoundError(
            f"--data-dir {config.data_dir!r} does not exist. Expected {spec.layout}.")


def _check_pipeline(config: TrainConfig):
    if config.input_pipeline == "arrays" and processes.process_count() > 1:
        raise ValueError("input_pipeline 'arrays' trains in one process; several processes "
                         "read their shards through input_pipeline 'tf.data'.")
    if config.export and importlib.util.find_spec("tensorflow") is None:
        raise ValueError("The SavedModel export needs TensorFlow, which is not installed; "
                         "pass --no-export (export=False).")


def _imagenet_unavailable(config: TrainConfig, error: Exception) -> str:
    """The message for a failed ``--weights imagenet`` download, in the flags' words."""
    cause = error.__cause__ or error
    url = re.search(r"https?://\S+?\.h5", str(cause))
    where = url.group(0) if url else f"the headless ('*_notop.h5') {config.backbone} weights file"
    return (f"--weights imagenet: could not download the ImageNet weights of backbone "
            f"{config.backbone!r} ({type(cause).__name__}: {cause}). Without network access, "
            f"pass --weights none to start from random weights, or download {where} elsewhere "
            "and pass --weights PATH (or copy the file into ~/.keras/models/).")


def _build_in_scope(config: TrainConfig, num_classes: int, strategy):
    with strategy.scope():
        try:
            return build_model(config, num_classes)
        except RuntimeError as e:
            if config.model_weights != "imagenet":
                raise
            raise SetupError(_imagenet_unavailable(config, e)) from e


def prepare(config: TrainConfig, data: Optional[dict] = None) -> dict:
    """Everything before the first training step; every setup error is raised here.

    Order: resolve and validate the config (names list the choices; hyperparameters go
    through the layer's own validation), check the run directory and the weights path, set
    the seed / precision / strategy, build the model (a failed imagenet download says how to
    pass a local file) when the class count is known, then load and validate every split the
    run will use (train, val, and test when evaluating; a missing data directory says where to
    get the data and the layout expected, bad files are reported now, not after training),
    and compile.

    Args:
        config: a TrainConfig (resolved here).
        data: optional ``{"train": ..., "val": ..., "test": ...}`` splits already loaded for
            ``config`` (``WSOLData`` for tf.data, ``ArrayData`` for arrays); the missing ones
            are loaded.

    Returns:
        dict with "config" (resolved), "saved" (the run directory's previous config or None),
        "strategy", "policy", "model", "train_data", "val_data", "test_data" (None without
        evaluation), "steps_per_epoch".

    Raises:
        SetupError (a ValueError) carrying the underlying message.
    """
    data = dict(data or {})
    try:
        # Devices and distribution first: resolving the config builds a layer, which starts the
        # backend (TensorFlow's devices, JAX's), too early for configuring them after it.
        configure_cpu_devices(config.devices)
        strategy = make_strategy(config.strategy, config.devices)
        config = config.resolved()
        if processes.process_index() > 0:
            config = processes.worker_view(config)
        saved = check_run_dir(config)
        _check_paths(config)
        _check_pipeline(config)
        keras.utils.set_random_seed(config.seed)
        policy = set_precision(config.mixed_precision)
        num_classes = _known_num_classes(config)
        model = None
        if num_classes is not None:
            model = _build_in_scope(config, num_classes, strategy)
        splits = ("train", "val", "test") if config.evaluate else ("train", "val")
        for split in splits:
            if data.get(split) is None:
                data[split] = inputs.load_split(config, split)
        train_data = data["train"]
        if model is None or train_data.num_classes != num_classes:
            keras.utils.set_random_seed(config.seed)
            model = _build_in_scope(config, train_data.num_classes, strategy)
        if processes.process_count() > 1:
            # Each process reads only its shard of the train split (of val:
            # inputs.validation_data); the batch sizes must split evenly.
            processes.per_process(config.batch_size)
            processes.per_process(config.eval_batch_size, "--eval-batch-size")
        steps_per_epoch = inputs.steps_per_epoch(config, train_data)
        if processes.process_count() > 1:
            train_data = processes.shard(train_data)
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
                train_data=train_data, val_data=data["val"], test_data=data.get("test"),
                steps_per_epoch=steps_per_epoch)


def train(config: TrainConfig, callbacks=(), verbose: int = 1, data: Optional[dict] = None
          ) -> dict:
    """Trains, evaluates and exports a WSOL model as ``config`` says; resumable.

    Every setup error comes before training starts (``prepare``). After fitting: the val split
    chooses the CAM threshold (its ``best_cam_threshold``), the test split is reported at it
    (``*_at_fixed``) and at its own best threshold, ``heatmaps.png`` figures and
    ``drop_stats.json`` are written, and the model is exported with the val threshold.

    Args:
        config: a TrainConfig (resolved here).
        callbacks: extra keras callbacks (run after the run's own).
        verbose: keras fit verbosity (1: progress bar).
        data: splits already loaded for ``config`` (see ``prepare``).

    Returns:
        dict with "run_dir", "config" (resolved), "model" (the keras model), "history",
        "epochs_done", "metrics" (test), "val_metrics", "cam_threshold", "export_path",
        "train_accuracy" and "val_accuracy" (last finished epoch, from log.csv), "drop_stats",
        "train_seconds" and "eval_seconds".

    Raises:
        SetupError: bad settings, paths, data or weights (nothing trained yet).

    Example:
        >>> result = train(TrainConfig(dataset="synthetic", epochs=1))
        >>> result["metrics"]["top1_loc"]
    """
    ctx = prepare(config, data)
    config, model = ctx["config"], ctx["model"]
    train_data, steps_per_epoch = ctx["train_data"], ctx["steps_per_epoch"]
    if ctx["saved"] is None or ctx["saved"].get("epochs") != config.epochs:
        write_config(config, model, {"dtype_policy": ctx["policy"],
                                     "num_replicas": ctx["strategy"].num_replicas_in_sync,
                                     "steps_per_epoch": steps_per_epoch,
                                     "num_classes": train_data.num_classes,
                                     "class_names": list(train_data.class_names),
                                     **_process_record(config, train_data)})

    start_epoch = finished_epochs(config.run_dir)
    history = {}
    t0 = time.time()
    if start_epoch < config.epochs:
        stream = inputs.training_stream(config, train_data, start_epoch, steps_per_epoch,
                                        processes.per_process(config.batch_size))
        val, val_batch_size = inputs.validation_data(config, ctx["val_data"])
        hist = model.fit(stream, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                         validation_data=val, validation_batch_size=val_batch_size,
                         shuffle=False,  # shuffled per epoch by the stream
                         callbacks=make_callbacks(config, callbacks),
                         verbose=verbose if processes.process_index() == 0 else 0)
        history = {k: [float(x) for x in v] for k, v in hist.history.items()}
    else:
        # Finished before: restore the last epoch's state instead of training again.
        model.load_weights(os.path.join(config.run_dir, "backup", "latest.weights.h5"))
    if processes.process_count() > 1:
        # Evaluation and export run on this process's devices, the processes disconnected.
        model = processes.local_model(model, lambda: build_model(config,
                                                                 train_data.num_classes))
    model.save(os.path.join(config.run_dir, "model.keras"))
    train_seconds = time.time() - t0

    result = {"run_dir": config.run_dir, "config": config, "model": model, "history": history,
              "epochs_done": finished_epochs(config.run_dir), "metrics": None,
              "val_metrics": None, "cam_threshold": None, "export_path": None,
              "train_accuracy": None, "val_accuracy": None, "drop_stats": None,
              "train_seconds": train_seconds, "eval_seconds": 0.0}
    log = read_csv_log(os.path.join(config.run_dir, "log.csv"))
    if log:
        result["train_accuracy"] = log[-1].get("accuracy")
        result["val_accuracy"] = log[-1].get("val_accuracy")
    t0 = time.time()
    if config.evaluate:
        result.update(_evaluate(model, config, ctx["val_data"], ctx["test_data"]))
    if config.export:
        result["export_path"] = export_model(model, config, result["cam_threshold"],
                                             list(train_data.class_names))
    result["eval_seconds"] = time.time() - t0
    return result


def _evaluate(model, config: TrainConfig, val_data, test_data) -> dict:
    """The val split chooses the CAM threshold, the test split is reported at it."""
    out_dir = os.path.join(config.run_dir, "eval")
    kwargs = dict(cam_curve_interval=config.cam_curve_interval,
                  num_figure_examples=config.num_figure_examples)
    val_metrics = evaluation.evaluate_split(
        model, val_data, config.image_size, config.eval_batch_size,
        os.path.join(out_dir, "val"), split="val", **kwargs)
    threshold = float(val_metrics["best_cam_threshold"])
    metrics = evaluation.evaluate_split(
        model, test_data, config.image_size, config.eval_batch_size,
        os.path.join(out_dir, "test"), split="test", cam_threshold=threshold, **kwargs)
    evaluation.write_metrics(os.path.join(config.run_dir, evaluation.METRICS_NAME), metrics,
                             split="test", cam_threshold=threshold, cam_threshold_from="val",
                             dataset=config.dataset,
                             model=os.path.join(config.run_dir, "model.keras"))
    drop_stats = evaluation.write_drop_statistics(
        model, test_data, config.image_size, config.eval_batch_size,
        os.path.join(out_dir, "test"), num_images=config.num_drop_stats_images)
    return dict(metrics=metrics, val_metrics=val_metrics, cam_threshold=threshold,
                drop_stats=drop_stats)


def _process_record(config: TrainConfig, train_data) -> dict:
    """config.json's record of the processes and, on several, of this one's data shard."""
    count = processes.process_count()
    if count == 1:
        return {"num_processes": 1}
    index = processes.process_index()
    return {"num_processes": count, "process_id": index,
            "data_shard": {"train_examples": f"{index}::{count}",
                           "num_train_examples": train_data.num_examples,
                           "batch_size": processes.per_process(config.batch_size)}}


def export_model(model, config: TrainConfig, cam_threshold: Optional[float] = None,
                 class_names=None) -> str:
    """Exports a SavedModel for TF Serving to ``export_dir/run_name/export_version`` with the
    CAM threshold chosen on val (``None``: the export's default; a rerun of the same command
    overwrites that version). Returns the version directory."""
    from keras_dgdm.export import export_saved_model  # deferred: TensorFlow, to export only

    kwargs = {} if cam_threshold is None else {"cam_threshold": cam_threshold}
    return export_saved_model(model, os.path.join(config.export_dir, config.run_name),
                              class_names=class_names, version=int(config.export_version),
                              overwrite=True, **kwargs)


__all__ = ["SetupError", "build_model", "compile_model", "prepare", "train", "export_model"]
