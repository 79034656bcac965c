"""End-to-end tests of the command-line entry points (subprocesses, tiny synthetic data)."""
import json
import os
import re
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import cli_support  # training/, on the path in conftest.py

#: Every metric the evaluator reports (keras_dgdm.metrics.WSOLEvaluator.result()).
METRIC_KEYS = ("top1_clas", "top5_clas", "gt_known_loc", "top1_loc", "top5_loc", "max_box_acc",
               "max_box_acc_v2", "pxap", "best_cam_threshold", "num_images")

TINY = ["--dataset", "synthetic", "--data-option", "num_images=24", "--image-size", "32",
        "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "2"]

# A TensorFlow C++ log record ("I0000 00:00:1796221350.694073    9863 port.cc:153] ...").
NATIVE_RECORD = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] ", re.M)


def _run(script, *args, cwd, status=0, env=None):
    """Runs training/SCRIPT as a user would (TF_CPP_MIN_LOG_LEVEL and KERAS_DGDM_DEBUG unset
    unless ``env`` sets them); checks the exit status, returns the completed process."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("TF_CPP_MIN_LOG_LEVEL", cli_support.DEBUG_ENV)}
    full_env.update(KERAS_BACKEND="tensorflow", **(env or {}))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "training", script), *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == status, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


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
    proc = _run("fit.py", *TINY, "--quiet", "--output-dir", "runs", "--export-dir", "exports",
                cwd=tmp_path)
    out = proc.stdout
    # Training, evaluation and export with no TensorFlow C++ log line on the way.
    assert not NATIVE_RECORD.search(proc.stderr), proc.stderr[-3000:]
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
    assert sorted(drop) == ["dgdm_after_block2_pool", "dgdm_after_block3_pool"]  # the recipe's
    for stats in drop.values():
        assert stats["layer"] == "DGDM" and stats["num_images"] == 24
    assert "drop mask erases" in out and "CAGD candidates" in out
    for name in ("config.json", "log.csv", "model.keras", "checkpoints/last.keras",
                 "backup/training_metadata.json"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["backbone"] == "small_vgg" and config["config"]["seed"] == 0
    # --config reruns the run: the same run directory, finished, so nothing is trained again.
    out = _run("fit.py", "--config", str(run / "config.json"), "--no-eval", "--no-export",
               "--quiet", cwd=tmp_path).stdout
    assert f"run directory: {os.path.join('runs', run.name)} (1 epochs)" in out
    assert len((run / "log.csv").read_text().strip().splitlines()) == 2  # header + 1 epoch
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
    out = _run("fit.py", *TINY, "--strategy", "mirrored", "--devices", "/cpu:0,/cpu:1",
               "--no-eval", "--no-export", "--output-dir", "runs", cwd=tmp_path).stdout
    run = tmp_path / "runs" / "synthetic-small_vgg-dgdm-32px-seed0"
    config = json.loads((run / "config.json").read_text())
    assert config["num_replicas"] == 2
    rows = (run / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + the one epoch
    # stdout is a pipe, not a terminal: one line per epoch, no progress bar redrawn in place.
    assert "\r" not in out and "\x1b[" not in out
    epochs = [line for line in out.splitlines() if line.startswith("2/2 - ")]
    assert len(epochs) == 1 and re.search(r" - accuracy: [\d.]+ - loss: [\d.]+ - ", epochs[0]), out


def test_fit_verbosity_follows_the_terminal():
    class Stream:
        def __init__(self, tty):
            self.isatty = lambda: tty

    assert cli_support.fit_verbosity(False, Stream(True)) == 1
    assert cli_support.fit_verbosity(False, Stream(False)) == 2
    assert cli_support.fit_verbosity(True, Stream(True)) == 0


# ------------------------------------------------------------- TensorFlow's start-up log lines


def test_help_starts_without_tensorflow_log_lines(tmp_path):
    proc = _run("fit.py", "--help", cwd=tmp_path)
    assert proc.stdout.startswith("usage: fit.py") and "--debug" in proc.stdout
    assert proc.stderr == ""


def test_native_records_are_removed_and_everything_else_kept():
    text = (
        "a plain line\n"
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796221350.694073    9863 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1796221350.815915    9863 cpu_feature_guard.cc:227] This TensorFlow binary "
        "is optimized.\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild.\n"
        "/x/numpy/core.py:12: UserWarning: something a user should see\n"
        "  warnings.warn(msg)\n"
        "E0000 00:00:1796221354.530526    9863 cuda_platform.cc:52] failed call to cuInit\n"
        "WARNING:absl:a Python log record\n"
    )
    assert cli_support.without_native_records(text) == (
        "a plain line\n"
        "/x/numpy/core.py:12: UserWarning: something a user should see\n"
        "  warnings.warn(msg)\n"
        "WARNING:absl:a Python log record\n"
    )


def test_a_users_log_level_and_debug_are_respected(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert cli_support.start(["--epochs", "1"]) is False
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert cli_support.start(["--debug"]) is True
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ  # --debug: TensorFlow logs as it likes
    monkeypatch.setenv(cli_support.DEBUG_ENV, "1")
    assert cli_support.start([]) is True
    monkeypatch.setenv(cli_support.DEBUG_ENV, "0")
    assert cli_support.start([]) is False
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == cli_support.TF_LOG_LEVEL


# ------------------------------------------------------- errors a user can cause: no traceback


def test_fit_error_is_one_message_and_debug_shows_the_traceback(tmp_path):
    args = ["--dataset", "cub", "--data-dir", str(tmp_path / "nowhere"), "--output-dir", "runs"]
    proc = _run("fit.py", *args, cwd=tmp_path, status=2)
    assert proc.stderr.splitlines() == [
        f"fit.py: error: --data-dir '{tmp_path / 'nowhere'}' does not exist. Expected "
        f"{_data_hint('cub')}.",
        "(fit.py --debug shows the traceback)",
    ]
    proc = _run("fit.py", *args, "--debug", cwd=tmp_path, status=1)
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("keras_dgdm.train.loop.SetupError: ")


def _data_hint(dataset):
    from keras_dgdm.data import get_dataset

    return get_dataset(dataset).layout


def test_evaluate_missing_model_is_one_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _evaluate_main([str(tmp_path / "no_run"), "--dataset", "synthetic"], capsys)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evaluate.py: error: {tmp_path / 'no_run'}: no such file or directory")


def _closed_port():
    """A localhost port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serving_client_without_a_server_says_so(tmp_path, capsys, training_script):
    client = training_script("serving_client")
    image = tmp_path / "bird.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    port = _closed_port()
    argv = [str(image), "--model", "cub", "--host", "127.0.0.1", "--rest-port", str(port)]
    with pytest.raises(SystemExit) as info:
        client.main(argv)
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"serving_client.py: error: cannot reach TF Serving at "
                             f"http://127.0.0.1:{port}/v1/models/cub (")
    assert "refused" in err[0] and "docs/serving.md" in err[0]
    with pytest.raises(client.ServingError, match="cannot reach TF Serving"):
        client.main(argv + ["--debug"])
    with pytest.raises(SystemExit) as info:
        client.main([str(tmp_path / "none.png"), "--model", "cub"])
    assert info.value.code == 1
    assert "No such file or directory" in capsys.readouterr().err
