"""Sweep runner: does DGDM beat ADL and CAM on the synthetic benchmark? (the paper's Table 1).

    python training/experiments.py --scale cpu  --output-dir experiments/cpu   # this machine
    KERAS_BACKEND=jax python training/experiments.py --scale gpu --output-dir experiments/gpu

Trains every configuration of ``CONFIGS`` (CAM, ADL, SAGD stage 1, SAGD stage 1+2, DGDM, the
block_size ablation on SAGD stage 1+2 and the beta ablation on DGDM) with several seeds on the
synthetic benchmark (``keras_dgdm.data.synthetic``), and writes:

    OUTPUT_DIR/runs/CONFIG-seedS.json   one file per finished (config, seed), written atomically
    OUTPUT_DIR/results.csv              one row per table row: mean and std over seeds
    OUTPUT_DIR/results.md               the table, laid out like the paper's Table 1
    OUTPUT_DIR/results.png              bar chart of the metrics (mean +- std)
    OUTPUT_DIR/figures/CONFIG-seedS.png the first seed's CAMs on 8 test images, per config
    OUTPUT_DIR/train/CONFIG-seedS/      the run directory of ``keras_dgdm.train.train``

Each (config, seed) is one call of ``keras_dgdm.train.train`` (the loop ``fit.py`` runs) with
``input_pipeline="arrays"``: the benchmark generated once, in memory, each epoch shuffled and
flipped from (seed, epoch); no TensorFlow needed (JAX backend). The training settings not in
``SCALES`` come from ``RECIPES["synthetic"]``. What is the sweep's own: the grid of configs and
scales, the CAM mass analysis, the table and the plot.

Resumable: a (config, seed) whose JSON exists is skipped, one interrupted mid-run resumes from
its run directory; a JSON written with other settings (scale, sizes, epochs) is an error naming
the file, so two scales never mix in one directory.

Protocol: the CAM threshold is chosen on the val split (best GT-known Loc) and the test split is
reported at it: Top-1 Clas, GT-known Loc and Top-1 Loc at the val threshold, and MaxBoxAccV2
(threshold-free by definition). Nothing is chosen on the test split. Each run also records
where its test CAMs put their mass (``cam_mass_fractions``): inside the discriminative part's
box versus inside the object's box.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import json
import math
import os
import shutil
import sys
import time

import keras
import matplotlib
import numpy as np

from keras_dgdm.backbones import get_backbone
from keras_dgdm.boxes import validate_boxes
from keras_dgdm.cam import compute_cams
from keras_dgdm.data import synthetic
from keras_dgdm.evaluation import FIGURE_NAME
from keras_dgdm.metrics import METRIC_TITLES
from keras_dgdm.train import RECIPES, TrainConfig, read_csv_log, train

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: The table's metric columns: (key in a run's "test" dict, title from METRIC_TITLES).
METRICS = tuple((key, METRIC_TITLES[key]) for key in (
    "top1_clas", "gt_known_loc", "top1_loc", "max_box_acc", "max_box_acc_v2"))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One trained configuration: a WSOL method and its layer hyperparameters.

    Args:
        name: file-name-safe id, e.g. ``"dgdm_beta2.5"``.
        method: ``"cam"``, ``"adl"``, ``"sagd"`` or ``"dgdm"`` (``build_wsol_model``'s).
        method_kwargs: layer hyperparameters, the paper's names (``block_size``, ``beta``, ...);
            the rest are the layer's / backbone's defaults.
        label: the row's method column in the table.
    """

    name: str
    method: str
    method_kwargs: tuple = ()
    label: str = ""

    @property
    def kwargs(self) -> dict:
        """``method_kwargs`` as a dict."""
        return dict(self.method_kwargs)


def _cfg(name, method, label, **kwargs):
    return ExperimentConfig(name, method, tuple(sorted(kwargs.items())), label)


_S1 = "SAGD stage 1 (M_drop2_stage1)"
_S12 = "SAGD stage 1+2 (M_drop2_stage1 + stage2)"
_DG = "DGDM (stage 1+2 + M_drop1 / CAGD)"

#: Every configuration trained by the sweep. SAGD stage 1 drops only the most discriminative
#: part (``background_threshold=None``); stage 1+2 also drops the background (the layer's default
#: ``background_threshold=0.05``); DGDM adds CAGD (``alpha=0.5``). block_size defaults to 3 and
#: beta to 3 (the paper's best), so ``sagd_stage12`` and ``dgdm`` are also the block_size=3 and
#: beta=3 rows of the ablations. The background_threshold rows (0.02, 0.1) are ours: the paper
#: gives no value for delta_l (0.1 was this library's default before 2026-12).
CONFIGS = {c.name: c for c in (
    _cfg("cam", "cam", "CAM"),
    _cfg("adl", "adl", "ADL"),
    _cfg("sagd_stage1", "sagd", _S1, background_threshold=None, block_size=3),
    _cfg("sagd_stage12", "sagd", _S12, block_size=3),
    _cfg("dgdm", "dgdm", _DG, block_size=3, beta=3.0),
    _cfg("sagd_stage12_block1", "sagd", _S12, block_size=1),
    _cfg("sagd_stage12_block2", "sagd", _S12, block_size=2),
    _cfg("sagd_stage12_blockadaptive", "sagd", _S12, block_size="adaptive"),
    _cfg("dgdm_beta2", "dgdm", _DG, block_size=3, beta=2.0),
    _cfg("dgdm_beta2.5", "dgdm", _DG, block_size=3, beta=2.5),
    _cfg("dgdm_beta3.5", "dgdm", _DG, block_size=3, beta=3.5),
    _cfg("sagd_stage12_bg0.02", "sagd", _S12, block_size=3, background_threshold=0.02),
    _cfg("sagd_stage12_bg0.1", "sagd", _S12, block_size=3, background_threshold=0.1),
)}

#: The main comparison (run first).
MAIN_CONFIGS = ("cam", "adl", "sagd_stage1", "sagd_stage12", "dgdm")

#: The table, in the layout of the paper's Table 1: (block title, [(config, setting), ...]).
TABLE_LAYOUT = (
    ("Baselines and stages", [("cam", ""), ("adl", ""), ("sagd_stage1", "block_size=3"),
                              ("sagd_stage12", "block_size=3"),
                              ("dgdm", "block_size=3, beta=3")]),
    ("block_size (SAGD stage 1+2; Table 1 middle block)", [
        ("sagd_stage12_block1", "block_size=1"), ("sagd_stage12_block2", "block_size=2"),
        ("sagd_stage12", "block_size=3"), ("sagd_stage12_blockadaptive", "block_size=Adap_7")]),
    ("beta (DGDM; Table 1 lower block)", [
        ("dgdm_beta2", "beta=2"), ("dgdm_beta2.5", "beta=2.5"), ("dgdm", "beta=3"),
        ("dgdm_beta3.5", "beta=3.5")]),
    ("background_threshold (SAGD, block_size=3; not in the paper, which gives no delta_l)", [
        ("sagd_stage1", "none (stage 1)"), ("sagd_stage12_bg0.02", "0.02"),
        ("sagd_stage12", "0.05 (layer default)"), ("sagd_stage12_bg0.1", "0.1")]),
)

#: Sizes per scale. ``gpu``: the planned H200 run (10,000 train images at 96x96, 20 epochs).
#: ``cpu``: the 2-core CPU sweep of EXPERIMENTS.md, section 0.
#: ``smoke``: the test's tiny run. The lr steps down for the last fifth (cpu) or quarter (gpu).
SCALES = {
    "gpu": dict(image_size=96, num_train=10000, num_val=1000, num_test=2000, epochs=20,
                lr_decay_epochs=15, eval_batch_size=256),
    "cpu": dict(image_size=96, num_train=3000, num_val=500, num_test=500, epochs=5,
                lr_decay_epochs=4, eval_batch_size=100),
    "smoke": dict(image_size=24, num_train=32, num_val=16, num_test=16, epochs=1,
                  lr_decay_epochs=1, eval_batch_size=16),
}

#: Test images on which each run measures what its method layers erase (``drop_stats``).
DROP_STATS_IMAGES = 500

#: Settings added after the first sweeps were run, with the value that older run files used
#: implicitly; ``load_finished`` fills them in, so those runs still resume (and a run of
#: another benchmark version never does). ``context_strength``, ``body_hint``, ``show``:
#: ``synthetic.generate``'s arguments; ``benchmark_version``: 1 = the generator before the
#: cue-structure change of 2026-12 (class order and body cue, EXPERIMENTS.md), 2 = now;
#: ``weights``: the backbone's start ("none" = from scratch, or a weights file); ``freeze_bn``:
#: BatchNorm frozen while fine-tuning (``build_wsol_model``).
ADDED_SETTINGS = {"context_strength": 0.5, "benchmark_version": 1, "body_hint": 0.35,
                  "show": "all", "weights": "none", "freeze_bn": False}

#: The synthetic benchmark version this code generates (see ``ADDED_SETTINGS``).
BENCHMARK_VERSION = 2

#: ``synthetic.generate`` arguments that are sweep settings.
GENERATOR_SETTINGS = ("context_strength", "body_hint", "show")

#: Seed of the generated data (the same benchmark for every run; the run seed varies the model).
DATA_SEED = 0


def settings_for(scale, **overrides):
    """The full run settings of ``scale`` with ``overrides`` (``None`` values ignored).

    Training settings not in ``SCALES`` come from ``keras_dgdm.train.RECIPES["synthetic"]``
    (backbone, batch size, lr, lr multiplier, decay rate, momentum, weight decay, bn_momentum).

    Args:
        scale: a key of ``SCALES``.
        **overrides: any settings key (``image_size``, ``num_train``, ``epochs``, ...).

    Returns:
        dict of settings, stored in every run JSON (and compared on resume).

    Raises:
        ValueError: unknown scale or settings key.

    Example:
        >>> settings_for("cpu", epochs=2)["epochs"]
        2
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; choose one of {sorted(SCALES)}.")
    recipe = RECIPES["synthetic"]
    settings = dict(scale=scale, data_seed=DATA_SEED, num_classes=10, cam_curve_interval=0.01,
                    **ADDED_SETTINGS)
    defaults = inspect.signature(synthetic.generate).parameters
    settings.update({k: defaults[k].default for k in GENERATOR_SETTINGS},
                    benchmark_version=BENCHMARK_VERSION, weights=recipe.get("weights", "none"),
                    freeze_bn=bool(recipe.get("freeze_bn", False)))
    for key in ("backbone", "batch_size", "lr", "lr_multiplier", "lr_decay_rate", "momentum",
                "weight_decay", "bn_momentum"):
        settings[key] = recipe[key]
    # Where the method layers go: a list of layer names, or "backbone" for the backbone's
    # default positions (the paper's: after every pool and the last conv for small_vgg).
    settings["insert_at"] = list(recipe.get("insert_at") or []) or "backbone"
    settings.update(SCALES[scale])
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in settings:
            raise ValueError(f"Unknown setting {key!r}; known: {sorted(settings)}.")
        settings[key] = value
    for key in ("context_strength", "body_hint"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0.0 <= value <= 1.0:
            raise ValueError(f"{key} must be a number in [0, 1]; got {value!r}.")
    if settings["show"] not in synthetic.SHOW:
        raise ValueError(f"show must be one of {synthetic.SHOW}; got {settings['show']!r}.")
    return settings


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def make_data(settings):
    """The train / val / test splits of ``settings`` in memory (``synthetic.load_split``: split
    i seeded [data_seed, i], as ``keras_dgdm.data.load("synthetic", ...)``)."""
    options = data_options(settings)
    return {split: synthetic.load_split(split, **options) for split in ("train", "val", "test")}


def data_options(settings):
    """The synthetic loader's options of ``settings`` (``TrainConfig.data_options``)."""
    return dict(num_train=settings["num_train"], num_val=settings["num_val"],
                num_test=settings["num_test"], image_size=settings["image_size"],
                num_classes=settings["num_classes"], seed=settings["data_seed"],
                **{k: settings.get(k, ADDED_SETTINGS[k]) for k in GENERATOR_SETTINGS})


# ----------------------------------------------------------------------------------------------
# CAM analysis
# ----------------------------------------------------------------------------------------------


def _box_sums(cams, boxes):
    """Sum of each CAM inside its inclusive (x0, y0, x1, y1) box, via an integral image."""
    n, h, w = cams.shape
    integral = np.zeros((n, h + 1, w + 1), np.float64)
    integral[:, 1:, 1:] = cams.astype(np.float64).cumsum(1).cumsum(2)
    b = np.asarray(boxes, np.float64).reshape(n, 4)
    x0 = np.clip(np.floor(b[:, 0]), 0, w - 1).astype(int)
    y0 = np.clip(np.floor(b[:, 1]), 0, h - 1).astype(int)
    x1 = np.clip(np.floor(b[:, 2]), 0, w - 1).astype(int) + 1
    y1 = np.clip(np.floor(b[:, 3]), 0, h - 1).astype(int) + 1
    i = np.arange(n)
    return integral[i, y1, x1] - integral[i, y0, x1] - integral[i, y1, x0] + integral[i, y0, x0]


def _box_areas(boxes, h, w):
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0 = np.clip(np.floor(b[:, 0]), 0, w - 1), np.clip(np.floor(b[:, 1]), 0, h - 1)
    x1, y1 = np.clip(np.floor(b[:, 2]), 0, w - 1), np.clip(np.floor(b[:, 3]), 0, h - 1)
    return (x1 - x0 + 1) * (y1 - y0 + 1)


def cam_mass_fractions(cams, object_boxes, part_boxes):
    """Where CAMs put their mass: inside the discriminative part's box vs the object's box.

    For each image, ``mass_in_box = sum(cam inside box) / sum(cam)`` (boxes inclusive, in the
    CAM's pixels, ``keras_dgdm.boxes`` convention); an all-zero CAM counts as 0. The box's share
    of the image area is the value a uniform CAM would get. The peak fraction is the share of
    images whose CAM maximum (first one) lies inside the box.

    Args:
        cams: (N, H, W) non-negative maps (e.g. normalised GT-class CAMs).
        object_boxes: (N, 4) object boxes.
        part_boxes: (N, 4) discriminative-part boxes.

    Returns:
        dict of means over the images: ``mass_in_part``, ``mass_in_object``,
        ``area_part`` and ``area_object`` (box area / image area), ``peak_in_part`` and
        ``peak_in_object`` (fractions in [0, 1]).

    Example:
        >>> cam = np.zeros((1, 4, 4)); cam[0, 0, 0] = 3.0; cam[0, 3, 3] = 1.0
        >>> cam_mass_fractions(cam, [[0, 0, 3, 3]], [[0, 0, 1, 1]])["mass_in_part"]
        0.75
    """
    cams = np.asarray(cams, np.float64)
    if cams.ndim != 3:
        raise ValueError(f"`cams` must have shape (N, H, W); got {cams.shape}.")
    n, h, w = cams.shape
    obj = validate_boxes(object_boxes, "object_boxes")
    part = validate_boxes(part_boxes, "part_boxes")
    for name, b in (("object_boxes", obj), ("part_boxes", part)):
        if b.shape[0] != n:
            raise ValueError(f"`{name}` must have one box per CAM ({n}); got {b.shape[0]}.")
    if (cams < 0).any():
        raise ValueError("`cams` must be non-negative (normalised CAMs).")
    total = cams.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    peak = cams.reshape(n, -1).argmax(axis=1)
    py, px = peak // w, peak % w

    def inside(b):
        return (px >= b[:, 0]) & (px <= b[:, 2]) & (py >= b[:, 1]) & (py <= b[:, 3])

    return {
        "mass_in_part": float(np.mean(_box_sums(cams, part) / safe)),
        "mass_in_object": float(np.mean(_box_sums(cams, obj) / safe)),
        "area_part": float(np.mean(_box_areas(part, h, w) / (h * w))),
        "area_object": float(np.mean(_box_areas(obj, h, w) / (h * w))),
        "peak_in_part": float(np.mean(inside(part) & (total > 0))),
        "peak_in_object": float(np.mean(inside(obj) & (total > 0))),
    }


# ----------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------


def cam_mass(model, data, batch_size):
    """``cam_mass_fractions`` of the GT-class CAMs of a split, averaged over its images."""
    mass, total = {}, 0
    for start in range(0, data.num_examples, 4 * batch_size):
        sl = slice(start, start + 4 * batch_size)
        res = compute_cams(model, data.images[sl], classes=data.labels[sl],
                           batch_size=batch_size)
        part = cam_mass_fractions(res.cams, data.boxes[sl, 0], data.part_boxes[sl])
        total += len(res.cams)
        for k, v in part.items():
            mass[k] = mass.get(k, 0.0) + v * len(res.cams)
    return {k: v / total for k, v in mass.items()}


#: Test images shown in each run's CAM figure.
FIGURE_IMAGES = 8


def train_config(config_name, seed, settings, output_dir):
    """The ``TrainConfig`` of one (config, seed) of the sweep, its run directory
    ``OUTPUT_DIR/train/CONFIG-seedS``."""
    if config_name not in CONFIGS:
        raise ValueError(f"Unknown config {config_name!r}; choose from {list(CONFIGS)}.")
    cfg = CONFIGS[config_name]
    insert_at = settings["insert_at"]
    if cfg.method == "cam":
        insert_at = None
    elif insert_at == "backbone":
        insert_at = list(get_backbone(settings["backbone"]).positions(cfg.method))
    return TrainConfig(
        dataset="synthetic", input_pipeline="arrays", data_options=data_options(settings),
        backbone=settings["backbone"], method=cfg.method, method_kwargs=cfg.kwargs,
        weights=settings.get("weights", "none"), bn_momentum=settings["bn_momentum"],
        freeze_bn=settings.get("freeze_bn", False), insert_at=insert_at,
        image_size=settings["image_size"], batch_size=settings["batch_size"],
        epochs=settings["epochs"], lr=settings["lr"], lr_multiplier=settings["lr_multiplier"],
        lr_decay_epochs=settings["lr_decay_epochs"], lr_decay_rate=settings["lr_decay_rate"],
        momentum=settings["momentum"], weight_decay=settings["weight_decay"], seed=int(seed),
        cam_curve_interval=settings["cam_curve_interval"],
        eval_batch_size=settings["eval_batch_size"], num_figure_examples=FIGURE_IMAGES,
        num_drop_stats_images=DROP_STATS_IMAGES, export=False,
        output_dir=os.path.join(output_dir, "train"), run_name=f"{config_name}-seed{int(seed)}")


def run_one(config_name, seed, settings, data=None, verbose=0, figure_path=None,
            output_dir="."):
    """Trains and evaluates one (config, seed) with ``keras_dgdm.train.train``; returns the
    result dict (see ``run_path``).

    Args:
        config_name: a key of ``CONFIGS``.
        seed: int; fixes weight init, epoch order/flips and the layers' randomness.
        settings: from ``settings_for``.
        data: ``make_data(settings)`` (generated by ``train`` when None).
        verbose: keras fit verbosity.
        figure_path: where to copy the run's CAM figure (``heatmaps.png`` of its test split),
            or None.
        output_dir: the sweep directory (the run directory goes to its ``train/``).

    Returns:
        dict with "config", "method", "method_kwargs", "seed", "settings", "backend",
        "test" (metrics at the val CAM threshold), "val", "test_own_threshold",
        "cam_mass" (test), "drop_stats" (``keras_dgdm.diagnostics.drop_statistics`` of the
        trained model on the first ``DROP_STATS_IMAGES`` test images), "history",
        "train_seconds", "eval_seconds".
    """
    tc = train_config(config_name, seed, settings, output_dir)
    cfg = CONFIGS[config_name]
    result = train(tc, verbose=verbose, data=data)
    test_all, threshold = result["metrics"], result["cam_threshold"]
    t0 = time.time()
    test_data = data["test"] if data is not None else make_data(settings)["test"]
    mass = cam_mass(result["model"], test_data, int(settings["eval_batch_size"]))
    if figure_path:
        os.makedirs(os.path.dirname(os.path.abspath(figure_path)), exist_ok=True)
        shutil.copyfile(os.path.join(result["run_dir"], "eval", "test", FIGURE_NAME), figure_path)
    log = read_csv_log(os.path.join(result["run_dir"], "log.csv"))
    history = {k: [row[k] for row in log] for k in (log[0] if log else {}) if k != "epoch"}
    test = {
        "top1_clas": test_all["top1_clas"],
        "gt_known_loc": test_all["gt_known_loc_at_fixed"],
        "top1_loc": test_all["top1_loc_at_fixed"],
        "max_box_acc": test_all["max_box_acc"],
        "max_box_acc_v2": test_all["max_box_acc_v2"],
        "cam_threshold_from_val": threshold,
    }
    return {
        "config": cfg.name, "method": cfg.method, "method_kwargs": cfg.kwargs,
        "seed": int(seed), "settings": settings, "backend": keras.backend.backend(),
        "keras_version": keras.__version__, "test": test, "val": result["val_metrics"],
        "test_own_threshold": test_all, "cam_mass": mass,
        "drop_stats": result["drop_stats"] or {}, "history": history,
        "train_seconds": result["train_seconds"],
        "eval_seconds": result["eval_seconds"] + time.time() - t0,
    }


def run_path(output_dir, config_name, seed):
    """``OUTPUT_DIR/runs/CONFIG-seedS.json``."""
    return os.path.join(output_dir, "runs", f"{config_name}-seed{int(seed)}.json")


def figure_path(output_dir, config_name, seed):
    """``OUTPUT_DIR/figures/CONFIG-seedS.png``: the CAM figure of a run of the first seed."""
    return os.path.join(output_dir, "figures", f"{config_name}-seed{int(seed)}.png")


def _write_json(path, payload):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, default=str)
    os.replace(tmp, path)


def load_finished(path, settings):
    """The result in ``path`` if it exists and was made with ``settings``, else None.

    Raises:
        ValueError: the file holds a run with other settings (naming the file and the keys).
    """
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    saved = {**ADDED_SETTINGS, **result.get("settings", {})}
    differ = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
    if differ:
        raise ValueError(
            f"{path} was made with other settings ({', '.join(differ)}: "
            + "; ".join(f"{k} saved {saved.get(k)!r} now {settings.get(k)!r}" for k in differ)
            + "). Use another --output-dir or delete the file.")
    return result


def run_order(configs, seeds):
    """The (config, seed) order: main configs for every seed first, then the ablation configs
    for the first seed, then the ablation configs for the other seeds."""
    main = [c for c in configs if c in MAIN_CONFIGS]
    rest = [c for c in configs if c not in MAIN_CONFIGS]
    order = [(c, s) for s in seeds for c in main]
    if seeds:
        order += [(c, seeds[0]) for c in rest]
        order += [(c, s) for s in seeds[1:] for c in rest]
    return order


def run_sweep(output_dir, settings, configs=None, seeds=(0, 1, 2), log=print, after_run=None,
              time_budget=None):
    """Runs every missing (config, seed), writing each result JSON as soon as it finishes, and
    rewrites the table and figure after each run.

    Args:
        output_dir: the sweep directory.
        settings: from ``settings_for``.
        configs: config names (default: all of ``CONFIGS``).
        seeds: run seeds.
        log: a print-like function for progress lines.
        after_run: optional callable(result) called after each new run.
        time_budget: seconds, or None (no limit). A new run is started only while the time
            spent in this call plus the longest run of this call so far fits in the budget (the
            first missing run always starts), so a job under a wall-clock limit (a batch
            scheduler, the GPU machine's 10-minute calls) stops cleanly between runs; rerunning
            the same command continues where it stopped.

    Returns:
        the list of results finished (earlier or now), in run order; shorter than the run order
        when the time budget stopped the sweep.

    Raises:
        ValueError: unknown config, a non-positive ``time_budget``, or a run file made with
            other settings.
    """
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a number of seconds > 0; got {time_budget!r}.")
    start = time.time()
    longest = 0.0
    configs = list(configs or CONFIGS)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"Unknown config(s) {unknown}; choose from {list(CONFIGS)}.")
    order = run_order(configs, list(seeds))
    # Check every existing file before training anything.
    done = {key: load_finished(run_path(output_dir, *key), settings) for key in order}
    data = None
    results = []
    for i, key in enumerate(order):
        result = done[key]
        if result is None:
            elapsed = time.time() - start
            if time_budget is not None and longest and elapsed + longest > time_budget:
                left = sum(1 for k in order[i:] if done[k] is None)
                log(f"time budget: {elapsed:.0f} s spent of {time_budget:.0f} s and a run takes "
                    f"up to {longest:.0f} s; stopping with {left} run(s) left. Rerun the same "
                    "command to continue.")
                break
            t0 = time.time()
            if data is None:
                data = make_data(settings)
            figure = figure_path(output_dir, *key) if key[1] == seeds[0] else None
            result = run_one(key[0], key[1], settings, data=data, figure_path=figure,
                             output_dir=output_dir)
            _write_json(run_path(output_dir, *key), result)
            longest = max(longest, time.time() - t0)
            t = result["test"]
            log(f"[{i + 1}/{len(order)}] {key[0]} seed {key[1]}: "
                + ", ".join(f"{title} {t[k]:.2f}" for k, title in METRICS)
                + f" ({time.time() - t0:.0f} s)")
            write_outputs(output_dir)
            if after_run is not None:
                after_run(result)
        else:
            log(f"[{i + 1}/{len(order)}] {key[0]} seed {key[1]}: finished before, skipped")
        results.append(result)
    return results


# ----------------------------------------------------------------------------------------------
# Table and figure
# ----------------------------------------------------------------------------------------------


def load_results(output_dir):
    """All run JSONs of ``output_dir`` as {config: [result, ...]} (seed order)."""
    folder = os.path.join(output_dir, "runs")
    out: dict[str, list] = {}
    if not os.path.isdir(folder):
        return out
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                r = json.load(f)
            out.setdefault(r["config"], []).append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r["seed"])
    return out


def summarize(values):
    """(mean, sample std with ddof=1 (0.0 for one value), n) of a list of numbers."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def drop_mask_erased(result):
    """% of the feature map the drop mask zeroes at the method layer nearest the CAM (the last
    one with a spatial part), from the run's ``drop_stats``; None for CAM, CAGD-only or a run
    saved without ``drop_stats``."""
    spatial = [s for s in (result.get("drop_stats") or {}).values()
               if "dropped_by_drop_mask" in s]
    return 100.0 * spatial[-1]["dropped_by_drop_mask"] if spatial else None


def table_rows(results):
    """The table's rows in ``TABLE_LAYOUT`` order: dicts with block, label, setting, config,
    seeds, and ``{metric}_mean`` / ``{metric}_std`` for each of ``METRICS``, for the CAM mass
    fractions ``mass_in_part`` / ``mass_in_object`` and for ``erased`` (``drop_mask_erased``,
    with ``erased_n`` runs)."""
    rows = []
    for block, entries in TABLE_LAYOUT:
        for config, setting in entries:
            rs = results.get(config, [])
            row = {"block": block, "label": CONFIGS[config].label, "setting": setting,
                   "config": config, "seeds": [r["seed"] for r in rs]}
            for key, _ in METRICS:  # runs saved before a metric was added lack it
                row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = summarize(
                    [r["test"][key] for r in rs if key in r["test"]])
            for key in ("mass_in_part", "mass_in_object"):
                row[f"{key}_mean"], row[f"{key}_std"], _n = summarize(
                    [100.0 * r["cam_mass"][key] for r in rs])
            erased = [v for v in (drop_mask_erased(r) for r in rs) if v is not None]
            row["erased_mean"], row["erased_std"], row["erased_n"] = summarize(erased)
            rows.append(row)
    return rows


def _pm(mean, std, n):
    if n == 0:
        return "not run"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f} (1 seed)"


def format_table(rows, settings=None):
    """The markdown table (mean ± sample std over seeds) of ``table_rows``."""
    lines = []
    if settings:
        lines.append(
            f"Synthetic benchmark, scale `{settings['scale']}`: {settings['backbone']}, "
            f"{settings['image_size']}x{settings['image_size']} images, "
            f"{settings['num_train']} train / {settings['num_val']} val / "
            f"{settings['num_test']} test, {settings['epochs']} epochs, batch "
            f"{settings['batch_size']}, lr {settings['lr']} (x{settings['lr_multiplier']} new "
            f"layers), decay x{settings['lr_decay_rate']} after epoch "
            f"{settings['lr_decay_epochs']}, bn_momentum {settings['bn_momentum']}, method "
            f"layers after {settings.get('insert_at')}, start "
            f"{settings.get('weights', ADDED_SETTINGS['weights'])}, benchmark version "
            f"{settings.get('benchmark_version', ADDED_SETTINGS['benchmark_version'])} (body_hint "
            f"{settings.get('body_hint', ADDED_SETTINGS['body_hint'])}, context strength "
            f"{settings.get('context_strength', ADDED_SETTINGS['context_strength'])}, images "
            f"show {settings.get('show', ADDED_SETTINGS['show'])}). Test split, "
            "CAM threshold chosen on val; mean ± sample std over seeds.")
        lines.append("")
    head = ["Method", "Setting", "Seeds"] + [t for _, t in METRICS] + [
        "CAM mass in part box (%)", "CAM mass in object box (%)", "Drop mask erases (%)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    block = None
    for row in rows:
        if row["block"] != block:
            block = row["block"]
            lines.append(f"| **{block}** |" + " |" * (len(head) - 1))
        n = len(row["seeds"])
        cells = [row["label"], row["setting"] or "-", ",".join(map(str, row["seeds"])) or "-"]
        cells += [_pm(row[f"{k}_mean"], row[f"{k}_std"], row[f"{k}_n"]) for k, _ in METRICS]
        cells += [_pm(row[f"{k}_mean"], row[f"{k}_std"], n)
                  for k in ("mass_in_part", "mass_in_object")]
        cells.append(_pm(row["erased_mean"], row["erased_std"], row["erased_n"])
                     if row["erased_n"] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    """One CSV line per table row (means and stds)."""
    keys = ["block", "label", "setting", "config", "seeds"]
    keys += [f"{k}_{s}" for k, _ in METRICS for s in ("mean", "std")]
    keys += [f"{k}_{s}" for k in ("mass_in_part", "mass_in_object", "erased")
             for s in ("mean", "std")]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in rows:
            out = {k: row[k] for k in keys}
            out["seeds"] = " ".join(map(str, row["seeds"]))
            for k in keys[5:]:
                out[k] = "" if math.isnan(row[k]) else f"{row[k]:.3f}"
            w.writerow(out)


def plot(path, rows, title=None):
    """Bar chart: one group per table row, one bar per metric, error bars = std over seeds."""
    labels = [f"{r['config']}" for r in rows]
    x = np.arange(len(rows))
    width = 0.8 / len(METRICS)
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=90)
    for j, (key, name) in enumerate(METRICS):
        means = [r[f"{key}_mean"] for r in rows]
        stds = [r[f"{key}_std"] for r in rows]
        ax.bar(x + (j - (len(METRICS) - 1) / 2) * width, means, width, yerr=stds,
               capsize=2, label=name)
    bounds = np.cumsum([len(e) for _, e in TABLE_LAYOUT])[:-1]
    for b in bounds:
        ax.axvline(b - 0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% (test split)")
    ax.set_ylim(0, 112)
    ax.legend(fontsize=8, ncol=4, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(output_dir):
    """Rewrites results.csv, results.md and results.png of ``output_dir`` from its run JSONs.

    Returns the table rows (``table_rows``).
    """
    results = load_results(output_dir)
    rows = table_rows(results)
    settings = next((rs[0]["settings"] for rs in results.values() if rs), None)
    os.makedirs(output_dir, exist_ok=True)
    write_csv(os.path.join(output_dir, "results.csv"), rows)
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(format_table(rows, settings))
    if results:
        title = None
        if settings:
            title = (f"synthetic, {settings['image_size']}px, {settings['num_train']} train, "
                     f"{settings['epochs']} epochs, small_vgg; mean ± std over seeds")
        plot(os.path.join(output_dir, "results.png"), rows, title)
    return rows


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def build_parser():
    """The experiments.py argument parser."""
    p = argparse.ArgumentParser(prog="experiments.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="cpu", choices=sorted(SCALES),
                   help="sizes: gpu (96px, 10k train, 20 epochs), cpu, smoke")
    p.add_argument("--output-dir", default=None, help="default: experiments/SCALE")
    p.add_argument("--configs", default=None,
                   help=f"comma-separated subset of: {', '.join(CONFIGS)} (default: all)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    for key in ("image_size", "num_train", "num_val", "num_test", "epochs", "lr_decay_epochs",
                "batch_size", "eval_batch_size"):
        p.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                       help=f"override the scale's {key}")
    p.add_argument("--context-strength", type=float, default=None,
                   help="probability that an image's background shows its class's context "
                        "(synthetic.generate; default 0.5; 0 removes the background shortcut)")
    p.add_argument("--body-hint", type=float, default=None,
                   help="how much of the body colour comes from the class (synthetic.generate)")
    p.add_argument("--show", default=None, choices=("all", "part", "body", "background"),
                   help="train and test on one cue alone (synthetic.generate(show=...)); for "
                        "measuring the benchmark's cue structure with --configs cam")
    p.add_argument("--weights", default=None,
                   help="the backbone's start: none (from scratch) or a weights file "
                        "(default: the synthetic recipe's)")
    p.add_argument("--insert-at", default=None,
                   help="comma-separated layer names after which the method layers go, or "
                        "'backbone' for the backbone's default positions (default: the "
                        "synthetic recipe's)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="start no new run once the time spent plus the longest run so far "
                        "would exceed SECONDS (for wall-clock-limited jobs); rerun the same "
                        "command to continue")
    p.add_argument("--table-only", action="store_true",
                   help="only rewrite the table and figure from the finished runs")
    return p


def main(argv=None):
    """CLI entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    output_dir = args.output_dir or os.path.join("experiments", args.scale)
    if args.table_only:
        rows = write_outputs(output_dir)
        print(format_table(rows))
        return 0
    overrides = {k: getattr(args, k) for k in (
        "image_size", "num_train", "num_val", "num_test", "epochs", "lr_decay_epochs",
        "batch_size", "eval_batch_size", "context_strength", "body_hint", "show", "weights")}
    if args.insert_at:
        overrides["insert_at"] = ("backbone" if args.insert_at.strip() == "backbone"
                                  else [t.strip() for t in args.insert_at.split(",") if t.strip()])
    try:
        settings = settings_for(args.scale, **overrides)
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        configs = [c.strip() for c in args.configs.split(",")] if args.configs else None
        run_sweep(output_dir, settings, configs, seeds,
                  log=lambda line: print(line, flush=True), time_budget=args.time_budget)
    except ValueError as e:
        print(f"experiments.py: error: {e}", file=sys.stderr)
        return 2
    print(format_table(write_outputs(output_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
