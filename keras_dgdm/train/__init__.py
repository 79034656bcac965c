"""Training, split by concern; ``train(config)`` is the one loop.

* ``recipes``: ``RECIPES``, the default hyperparameters per dataset (one table).
* ``config``: ``TrainConfig``, every setting of a run, documented field by field, and its
  validation (``resolved()``).
* ``run_dir``: what a run directory holds, and whether it holds the run a config describes.
* ``optimizer``: ``ScaledSGD`` and ``step_decay``, the reference recipes' SGD and schedule.
* ``distribution``: devices, MirroredStrategy / DataParallel, mixed precision;
  ``processes``: several processes or hosts (JAX).
* ``inputs``: what ``model.fit`` reads, through tf.data or from arrays in memory.
* ``callbacks``: resumption, the layers' random stream per epoch, the lr log.
* ``loop``: ``prepare`` (every setup error before training) and ``train``.
* ``flags``: the ``fit.py`` command line, generated from ``TrainConfig``.

Names are loaded on first use (PEP 562): ``import keras_dgdm`` imports ``optimizer`` only (to
register ``ScaledSGD``), not the trainer.
"""
import importlib

_LAZY = {
    "RECIPES": "recipes", "recipe_for": "recipes",
    "TrainConfig": "config", "STRATEGIES": "config", "INPUT_PIPELINES": "config",
    "check_run_dir": "run_dir", "write_config": "run_dir", "read_config": "run_dir",
    "finished_epochs": "run_dir", "read_csv_log": "run_dir",
    "ScaledSGD": "optimizer", "variable_paths": "optimizer", "step_decay": "optimizer",
    "configure_cpu_devices": "distribution", "make_strategy": "distribution",
    "set_precision": "distribution",
    "EpochSeededLayers": "callbacks", "make_callbacks": "callbacks",
    "SetupError": "loop", "prepare": "loop", "train": "loop", "build_model": "loop",
    "compile_model": "loop", "export_model": "loop",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"keras_dgdm.train.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'keras_dgdm.train' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
