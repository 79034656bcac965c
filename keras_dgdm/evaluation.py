"""Evaluation: run a model over an eval pipeline -> metrics dict, ``metrics.json``, figures.

Used by ``training.train`` after fitting and by ``python training/evaluate.py``. The metric
definitions live in ``keras_dgdm.metrics`` (WSOLEvaluator); this module only feeds it:

* ``load_model(path)``: a ``.keras`` file, a run directory (``RUN_DIR/model.keras``) or an
  exported SavedModel (``saved_models/NAME/VERSION`` or ``saved_models/NAME``: latest version).
* ``cam_predictor(model)``: a callable ``(images, labels) -> (logits, cams)`` with the CAMs of
  the ground-truth classes (GT-known protocol; Top-1 Loc uses them when the class is right).
* ``evaluate_model(model, pipeline)``: streaming over batches; returns the flat metrics dict and
  a few examples for the figure.
* ``evaluate_split(...)``: the above for one split (a ``WSOLData`` through ``eval_pipeline``,
  or an in-memory ``ArrayData``), writing ``metrics.json`` and ``heatmaps.png`` into a
  directory.
* ``format_metrics_table(metrics)``: the table the CLI prints.

The CAM threshold a split is reported at (``*_at_fixed`` metrics, the figure's boxes) is called
``cam_threshold`` everywhere, from the evaluator to the export.
"""
from __future__ import annotations

import json
import os

import keras
import numpy as np

from keras_dgdm.boxes import box_from_cam, strip_padding
from keras_dgdm.cam import cached_cam_model
from keras_dgdm.data import arrays
from keras_dgdm.diagnostics import drop_statistics, method_layers
from keras_dgdm.export import load_metadata
from keras_dgdm.metrics import METRIC_TITLES, WSOLEvaluator
from keras_dgdm.viz import save_grid

#: The metrics the CLI prints, in order (titles: ``keras_dgdm.metrics.METRIC_TITLES``); the
#: first four are the headline metrics.
TABLE_KEYS = ("top1_clas", "gt_known_loc", "top1_loc", "max_box_acc_v2", "top5_clas",
              "top5_loc", "max_box_acc", "pxap", "best_cam_threshold")

FIGURE_NAME = "heatmaps.png"
METRICS_NAME = "metrics.json"
DROP_STATS_NAME = "drop_stats.json"


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class SavedModelPredictor:
    """A SavedModel exported by ``keras_dgdm.export`` seen as ``(images, labels) -> (scores,
    cams)``: the ``cam_for_class`` signature gives the GT-class CAMs, ``serving_default`` the
    class probabilities (they order classes like the logits, which is all Top-k needs).

    Args:
        path: the version directory (holding ``saved_model.pb``).
    """

    def __init__(self, path):
        import tensorflow as tf  # deferred: SavedModels need TensorFlow, the rest does not

        self.path = path
        self.metadata = load_metadata(path)
        self._loaded = tf.saved_model.load(path)
        sigs = self._loaded.signatures
        missing = [s for s in ("serving_default", "cam_for_class") if s not in sigs]
        if missing:
            raise ValueError(f"SavedModel {path} lacks the signature(s) {missing} "
                             f"(has {sorted(sigs)}); export it with keras_dgdm.export.")
        self._scores = sigs["serving_default"]
        self._cams = sigs["cam_for_class"]
        self.input_size = tuple(self.metadata["image_size"])
        self.class_names = self.metadata.get("class_names")

    def __call__(self, images, labels):
        import tensorflow as tf  # deferred: as in __init__

        images = tf.convert_to_tensor(images, tf.float32)
        scores = self._scores(images=images)["probabilities"].numpy()
        cams = self._cams(images=images, class_ids=tf.convert_to_tensor(labels, tf.int32))
        return scores, cams["cams"].numpy()


def _find_saved_model(path):
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [d for d in os.listdir(path) if d.isdigit()
                and os.path.exists(os.path.join(path, d, "saved_model.pb"))]
    if versions:
        return os.path.join(path, max(versions, key=int))
    return None


def load_model(path: str):
    """Loads what ``path`` points at for evaluation.

    Args:
        path: a ``.keras`` file; a run directory (its ``model.keras``; ``config.json`` gives the
            dataset defaults); a SavedModel directory or a TF Serving base directory
            (``NAME/`` holding version folders: the highest version is used).

    Returns:
        ``(model, run_config)``: a keras.Model or a SavedModelPredictor, and the run's saved
        ``config.json`` dict (``{}`` when there is none).

    Raises:
        FileNotFoundError naming the path and what was expected there.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory; expected a run directory, "
                                "a .keras file or a SavedModel directory.")
    run_config = {}
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            run_config = json.load(f)
        keras_path = os.path.join(path, "model.keras")
        if not os.path.exists(keras_path):
            raise FileNotFoundError(f"Run directory {path} has no model.keras yet (training "
                                    "not finished?); evaluate checkpoints/last.keras instead.")
        return keras.saving.load_model(keras_path, compile=False), run_config
    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise FileNotFoundError(f"{path}: expected a .keras file, a run directory or a "
                                    "SavedModel directory.")
        return keras.saving.load_model(path, compile=False), run_config
    saved = _find_saved_model(path)
    if saved is None:
        raise FileNotFoundError(
            f"{path}: neither a run directory (config.json + model.keras), nor a SavedModel "
            "(saved_model.pb), nor a TF Serving base directory (VERSION/saved_model.pb)."
        )
    return SavedModelPredictor(saved), run_config


def cam_predictor(model):
    """``(images, labels) -> (logits, cams)`` as numpy, CAMs of the given (GT) classes.

    ``model`` is a keras WSOL model (``build_wsol_model``) or a SavedModelPredictor.
    """
    if isinstance(model, SavedModelPredictor):
        return model
    cam_model = cached_cam_model(model, with_class_ids=True)

    def predict(images, labels):
        out = cam_model.predict_on_batch(
            [np.asarray(images, np.float32), np.asarray(labels, np.int32)])
        return np.asarray(out["logits"]), np.asarray(out["cams"])

    return predict


def model_input_size(model):
    """(height, width) the model takes."""
    if isinstance(model, SavedModelPredictor):
        return model.input_size
    return tuple(model.input_shape[1:3])


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate_model(model, pipeline, *, cam_curve_interval=0.01, iou_thresholds=(0.3, 0.5, 0.7),
                   cam_threshold=None, with_pxap=None, num_figure_examples=8):
    """Runs ``model`` over an eval pipeline and computes every WSOL metric.

    Args:
        model: keras WSOL model or SavedModelPredictor (see ``load_model``).
        pipeline: ``keras_dgdm.data.eval_pipeline(...)`` batches (dicts with "images",
            "labels", "boxes" padded with PAD_VALUE rows, optionally "masks"), or any iterable
            of such numpy dicts.
        cam_curve_interval, iou_thresholds: the evaluator's threshold grids.
        cam_threshold: report ``*_at_fixed`` metrics at this threshold (e.g. the best one
            found on val); None: the evaluator's default.
        with_pxap: compute PxAP from the masks (None: when the batches carry masks).
        num_figure_examples: how many first examples to keep for the figure.

    Returns:
        ``(metrics, examples)``: the flat dict of ``WSOLEvaluator.result()`` and a dict of
        numpy arrays ("images", "cams", "labels", "predictions", "gt_boxes" list) of the first
        examples.

    Example:
        >>> metrics, _ = evaluate_model(model, eval_pipeline(data, 64, 32))
        >>> metrics["top1_loc"]
    """
    predict = cam_predictor(model)
    kwargs = dict(cam_curve_interval=cam_curve_interval, iou_thresholds=tuple(iou_thresholds))
    if cam_threshold is not None:
        kwargs["cam_threshold"] = float(cam_threshold)
    evaluator = None
    examples = {"images": [], "cams": [], "labels": [], "predictions": [], "gt_boxes": []}
    kept = 0
    iterator = pipeline.as_numpy_iterator() if hasattr(pipeline, "as_numpy_iterator") else pipeline
    for batch in iterator:
        if evaluator is None:
            if with_pxap is None:
                with_pxap = "masks" in batch
            evaluator = WSOLEvaluator(with_pxap=bool(with_pxap), **kwargs)
        images, labels = batch["images"], np.asarray(batch["labels"])
        logits, cams = predict(images, labels)
        gt_boxes = [strip_padding(b) for b in batch["boxes"]]
        evaluator.update(cams, gt_boxes, logits, labels,
                         masks=batch.get("masks") if with_pxap else None)
        take = min(num_figure_examples - kept, len(labels))
        if take > 0:
            examples["images"].append(np.clip(images[:take], 0, 255).astype(np.uint8))
            examples["cams"].append(cams[:take])
            examples["labels"].append(labels[:take])
            examples["predictions"].append(np.argmax(logits[:take], axis=-1))
            examples["gt_boxes"].extend(gt_boxes[:take])
            kept += take
    if evaluator is None:
        raise ValueError("The evaluation pipeline gave no batch: the split is empty.")
    for k in ("images", "cams", "labels", "predictions"):
        examples[k] = np.concatenate(examples[k]) if examples[k] else np.zeros((0,))
    return evaluator.result(), examples


def save_figure(path, examples, cam_threshold, class_names=None):
    """Writes the heatmap grid (image, CAM overlay, GT boxes red, predicted box green) for the
    kept ``examples`` with predicted boxes at ``cam_threshold``. Returns ``path``."""
    def name(c):
        c = int(c)
        return class_names[c] if class_names is not None and c < len(class_names) else str(c)

    pred_boxes = [np.asarray(box_from_cam(cam, cam_threshold)) for cam in examples["cams"]]
    titles = [f"gt {name(g)} / pred {name(p)}"
              for g, p in zip(examples["labels"], examples["predictions"])]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_grid(path, examples["images"], examples["cams"], examples["gt_boxes"], pred_boxes,
              titles=titles)
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_metrics(path, metrics, **info):
    """Writes ``{"metrics": metrics, **info}`` as JSON (numpy values converted). Returns path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_jsonable({**info, "metrics": metrics}), f, indent=2)
    return path


def eval_batches(data, image_size, batch_size):
    """The evaluation batches of a split: ``eval_pipeline`` of a ``WSOLData`` (resize, boxes
    scaled), or ``arrays.eval_batches`` of an ``ArrayData`` (as it is, at the model's size)."""
    if isinstance(data, arrays.ArrayData):
        return arrays.eval_batches(data, batch_size, image_size)
    from keras_dgdm.data.pipeline import eval_pipeline  # deferred: tf.data needs TensorFlow

    return eval_pipeline(data, image_size, batch_size).as_numpy_iterator()


def evaluate_split(model, data, image_size, batch_size, output_dir, *, split="test",
                   cam_curve_interval=0.01, cam_threshold=None, num_figure_examples=8,
                   class_names=None):
    """Evaluates ``model`` on a loaded split and writes ``output_dir/metrics.json`` and
    ``output_dir/heatmaps.png``.

    Args:
        model: keras WSOL model or SavedModelPredictor.
        data: a ``keras_dgdm.data.load(...)`` WSOLData or an ``ArrayData``.
        image_size, batch_size: of the evaluation batches (``eval_batches``).
        output_dir: where the files go (created).
        split: recorded in metrics.json.
        cam_threshold: the threshold of the ``*_at_fixed`` metrics and the figure's boxes
            (None: the best threshold of this split).

    Returns:
        the flat metrics dict.
    """
    metrics, examples = evaluate_model(
        model, eval_batches(data, image_size, batch_size), cam_curve_interval=cam_curve_interval,
        cam_threshold=cam_threshold, with_pxap=bool(data.has_masks),
        num_figure_examples=num_figure_examples)
    threshold = (float(cam_threshold) if cam_threshold is not None
                 else float(metrics["best_cam_threshold"]))
    write_metrics(os.path.join(output_dir, METRICS_NAME), metrics, split=split,
                  cam_threshold=threshold)
    if len(examples["labels"]):
        save_figure(os.path.join(output_dir, FIGURE_NAME), examples, threshold,
                    class_names=class_names if class_names is not None
                    else list(getattr(data, "class_names", []) or []) or None)
    return metrics


def write_drop_statistics(model, data, image_size, batch_size, output_dir, num_images=256):
    """What the model's method layers erase on the first ``num_images`` images of a split:
    ``keras_dgdm.diagnostics.drop_statistics`` written to ``output_dir/drop_stats.json``.

    Returns:
        the statistics dict, or None (nothing written) for a model without method layers or
        a SavedModel predictor.
    """
    if not isinstance(model, keras.Model) or not method_layers(model):
        return None
    images, count = [], 0
    for batch in eval_batches(data, image_size, batch_size):
        images.append(batch["images"][: num_images - count])
        count += len(images[-1])
        if count >= num_images:
            break
    stats = drop_statistics(model, np.concatenate(images), batch_size=batch_size)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, DROP_STATS_NAME), "w", encoding="utf-8") as f:
        json.dump(_jsonable(stats), f, indent=2)
    return stats


def format_metrics_table(metrics, title=None, at_fixed=False) -> str:
    """The metrics as an aligned two-column text table (percentages).

    Args:
        metrics: a ``WSOLEvaluator.result()`` dict.
        title: optional first line.
        at_fixed: show GT-known / Top-1 / Top-5 Loc at ``cam_threshold`` (e.g. the one chosen
            on val: the honest test numbers) instead of at this split's best threshold.
    """
    lines = [title] if title else []
    width = max(len(METRIC_TITLES[key]) for key in TABLE_KEYS) + 12
    for key in TABLE_KEYS:
        label = METRIC_TITLES[key]
        if at_fixed and key in ("gt_known_loc", "top1_loc", "top5_loc") \
                and metrics.get(key + "_at_fixed") is not None:
            key = key + "_at_fixed"
            label = f"{label} @ {float(metrics['cam_threshold']):.2f}"
        if key not in metrics or metrics[key] is None:
            continue
        value = float(metrics[key])
        text = f"{value:.2f}" if key == "best_cam_threshold" else f"{value:6.2f} %"
        lines.append(f"  {label:<{width}}  {text}")
    return "\n".join(lines)


__all__ = ["TABLE_KEYS", "SavedModelPredictor", "load_model", "cam_predictor",
           "model_input_size", "evaluate_model", "eval_batches", "save_figure", "write_metrics",
           "write_drop_statistics", "evaluate_split", "format_metrics_table"]
