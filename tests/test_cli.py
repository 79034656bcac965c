"""End-to-end tests of the command-line entry points (subprocesses, tiny synthetic data)."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Every metric the evaluator reports (keras_dgdm.metrics.WSOLEvaluator.result()).
METRIC_KEYS = ("top1_clas", "top5_clas", "gt_known_loc", "top1_loc", "top5_loc", "max_box_acc",
               "max_box_acc_v2", "pxap", "best_cam_threshold", "num_images")

TINY = ["--dataset", "synthetic", "--data-option", "num_images=24", "--image-size", "32",
        "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "2", "--quiet"]


def _run(script, *args, cwd):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "training", script), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _check_metrics(path, num_images):
    payload = json.loads(open(path, encoding="utf-8").read())
    metrics = payload["metrics"]
    for key in METRIC_KEYS:
        assert key in metrics, (key, sorted(metrics))
    for key in METRIC_KEYS[:-2]:
        assert 0.0 <= metrics[key] <= 100.0, (key, metrics[key])
    assert 0.0 <= metrics["best_cam_threshold"] < 1.0
    assert metrics["num_images"] == num_images
    return payload


def _evaluate_main(argv, capsys):
    """evaluate.py's main in this process (saves a TensorFlow start-up per call)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_cli_evaluate", os.path.join(REPO, "training", "evaluate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)
    return capsys.readouterr().out


def test_train_evaluate_export_end_to_end(tmp_path, monkeypatch, capsys):
    out = _run("fit.py", *TINY, "--output-dir", "runs", "--export-dir", "exports",
               cwd=tmp_path)
    run = tmp_path / "runs" / "synthetic-small_vgg-dgdm-32px-seed0"
    for label in ("Top-1 Clas", "GT-known Loc", "Top-1 Loc", "MaxBoxAccV2"):
        assert label in out, out
    payload = _check_metrics(run / "metrics.json", num_images=24)
    assert payload["split"] == "test" and payload["cam_threshold_from"] == "val"
    val = json.loads((run / "eval" / "val" / "metrics.json").read_text())["metrics"]
    assert payload["cam_threshold"] == val["best_cam_threshold"]
    assert (run / "eval" / "test" / "heatmaps.png").stat().st_size > 1000
    # what the DGDM layer erases: written for the test split and printed
    drop = json.loads((run / "eval" / "test" / "drop_stats.json").read_text())
    (stats,) = drop.values()
    assert stats["layer"] == "DGDM" and stats["num_images"] == 24
    assert "drop mask erases" in out and "CAGD candidates" in out
    for name in ("config.json", "log.csv", "model.keras", "checkpoints/last.keras",
                 "backup/training_metadata.json"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["backbone"] == "small_vgg" and config["config"]["seed"] == 0
    export = tmp_path / "exports" / "synthetic-small_vgg-dgdm-32px-seed0" / "1"
    assert export.is_dir() and any(export.iterdir())

    # evaluate.py on the run directory: every metric, at the run's val threshold.
    monkeypatch.chdir(tmp_path)
    out = _evaluate_main([str(run), "--split", "test", "--output-dir", "ev"], capsys)
    assert "Top-1 Loc" in out
    again = _check_metrics(tmp_path / "ev" / "metrics.json", num_images=24)
    assert again["metrics"]["top1_loc"] == pytest.approx(payload["metrics"]["top1_loc"])
    assert (tmp_path / "ev" / "heatmaps.png").exists()

    # ... and on the exported SavedModel (TF Serving base directory: the latest version).
    assert (export / "saved_model.pb").exists()
    _evaluate_main([str(export.parent), "--dataset", "synthetic", "--data-option",
                    "num_images=24", "--data-option", "image_size=32", "--split", "val",
                    "--output-dir", "ev_export"], capsys)
    exported = _check_metrics(tmp_path / "ev_export" / "metrics.json", num_images=24)
    assert exported["metrics"]["top1_clas"] == pytest.approx(val["top1_clas"])
    assert exported["metrics"]["max_box_acc_v2"] == pytest.approx(val["max_box_acc_v2"], abs=0.5)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    _run("fit.py", *TINY, "--strategy", "mirrored", "--devices", "/cpu:0,/cpu:1", "--no-eval",
         "--no-export", "--output-dir", "runs", cwd=tmp_path)
    run = tmp_path / "runs" / "synthetic-small_vgg-dgdm-32px-seed0"
    config = json.loads((run / "config.json").read_text())
    assert config["num_replicas"] == 2
    rows = (run / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + the one epoch
