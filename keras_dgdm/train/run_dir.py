"""The run directory: what it holds, and whether it holds the run a config describes.

    RUN_DIR/config.json      the resolved TrainConfig (+ the method layers' full configs)
    RUN_DIR/backup/          keras.callbacks.BackupAndRestore state (resumption)
    RUN_DIR/checkpoints/     last.keras, overwritten at the end of every epoch
    RUN_DIR/logs/            TensorBoard
    RUN_DIR/log.csv          one row per finished epoch (loss, accuracy, val_accuracy, lr)
    RUN_DIR/model.keras      the trained model
    RUN_DIR/eval/val/, RUN_DIR/eval/test/   metrics.json + heatmaps.png per split (test: also
                                            drop_stats.json, what the method layers erase)
    RUN_DIR/metrics.json     the test metrics (at the CAM threshold chosen on val)
"""
from __future__ import annotations

import csv
import json
import os
from typing import Optional

import keras

from keras_dgdm.layers.registry import METHOD_LAYERS
from keras_dgdm.train.config import TrainConfig, field_defaults

CONFIG_NAME = "config.json"

# Fields whose change does not make a run directory a different run (resuming with more
# epochs continues training; the rest only affect evaluation, export or speed).
RESUMABLE_CHANGES = frozenset({
    "epochs", "evaluate", "export", "export_dir", "export_version", "num_figure_examples",
    "num_drop_stats_images", "eval_batch_size", "cam_curve_interval", "output_dir", "strategy",
    "devices", "jit", "data_dir",
})


def read_config(path: str) -> dict:
    """The ``config`` dict of a run's ``config.json`` (``path``: the file or its run directory)."""
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_NAME)
    with open(path, encoding="utf-8") as f:
        return json.load(f)["config"]


def check_run_dir(config: TrainConfig) -> Optional[dict]:
    """Compares ``config`` with the one saved in its run directory, if any.

    Returns the saved config dict (or None for a new run). Raises ValueError naming the
    differing fields when the directory holds a different run (resuming it with other
    hyperparameters would silently mix two runs): pick another ``--output-dir``/``--run-name``.
    A field the saved config lacks (added since) counts as its default.
    """
    path = os.path.join(config.run_dir, CONFIG_NAME)
    if not os.path.exists(path):
        return None
    saved = {**field_defaults(), **read_config(path)}
    current = config.to_dict()
    differ = sorted(
        k for k in set(saved) | set(current)
        if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
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
        classes = tuple(METHOD_LAYERS.values())
        payload["method_layers"] = {
            layer.name: layer.get_config() for layer in model.layers if isinstance(layer, classes)
        }
    payload.update(extra or {})
    os.makedirs(config.run_dir, exist_ok=True)
    path = os.path.join(config.run_dir, CONFIG_NAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, default=str)
    return path


def finished_epochs(run_dir: str) -> int:
    """Epochs finished in ``run_dir`` according to its BackupAndRestore state (0 if none)."""
    path = os.path.join(run_dir, "backup", "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f).get("epoch", 0))


def read_csv_log(path: str) -> list[dict]:
    """Rows of a CSVLogger file as dicts of floats ([] when missing)."""
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


__all__ = ["CONFIG_NAME", "RESUMABLE_CHANGES", "read_config", "check_run_dir", "write_config",
           "finished_epochs", "read_csv_log"]
