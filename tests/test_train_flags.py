"""The command line generated from TrainConfig (keras_dgdm.train.flags): every field is a flag,
--help shows the recipes' values and the registries' choices, --config reruns a run."""
import argparse
import dataclasses
import os

import pytest

from keras_dgdm.train import TrainConfig, write_config
from keras_dgdm.train.flags import add_config_flags, config_from_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parser(width=None):
    formatter = argparse.HelpFormatter if width is None else (
        lambda prog: argparse.HelpFormatter(prog, width=width))
    parser = argparse.ArgumentParser(prog="test", formatter_class=formatter)
    add_config_flags(parser)
    return parser


def _help():
    """The help text, unwrapped, on one line (argparse would break a line at any hyphen)."""
    return " ".join(_parser(width=100_000).format_help().split())


def test_help_shows_each_recipes_value_and_the_registries_choices():
    text = _help()
    assert "(default: None)" not in text
    assert "--epochs EPOCHS epochs to train (recipe: synthetic 5, cub 50, cars 50, ilsvrc 10, " \
           "metadata 50)" in text
    assert "BatchNorm momentum (recipe: 0.9 in every recipe)" in text
    assert "while fine-tuning (recipe: off in every recipe)" in text
    assert "(recipe: synthetic block2_pool,block3_pool; otherwise the backbone's positions)" in text
    assert "--dataset {synthetic,cub,cars,ilsvrc,metadata}" in text
    assert "--method {cam,adl,sagd,cagd,dgdm}" in text
    assert "--backbone {inception_v3,resnet50,small_vgg,vgg16}" in text
    assert "--steps-per-epoch STEPS_PER_EPOCH batches per epoch (default: one pass" in text
    assert "--drop-rate DROP_RATE layer default: 0.75" in text
    for field in dataclasses.fields(TrainConfig):  # every field's own description
        assert " ".join(field.metadata["help"].split()) in text, field.name


def test_no_flag_is_the_default_config_and_each_flag_sets_its_field():
    parser = _parser()
    assert config_from_flags(parser.parse_args([])) == TrainConfig()
    config = config_from_flags(parser.parse_args([
        "--dataset", "cub", "--data-dir", "d", "--data-option", "holdout_fraction=0.2",
        "--data-option", "source=raw", "--input-pipeline", "tf.data", "--image-size", "96",
        "--backbone", "resnet50", "--method", "adl", "--drop-rate", "0.5",
        "--insert-at", "a, b*", "--weights", "none", "--bn-momentum", "0.8", "--no-freeze-bn",
        "--batch-size", "16", "--epochs", "3", "--steps-per-epoch", "7", "--lr", "0.02",
        "--lr-multiplier", "5", "--lr-decay-epochs", "2", "--lr-decay-rate", "0.5",
        "--momentum", "0.8", "--nesterov", "--weight-decay", "0.001", "--seed", "4",
        "--output-dir", "o", "--run-name", "r", "--strategy", "none", "--devices", "/cpu:0",
        "--mixed-precision", "--jit", "--no-eval", "--cam-curve-interval", "0.05",
        "--eval-batch-size", "8", "--num-figure-examples", "2", "--num-drop-stats-images", "9",
        "--no-export", "--export-dir", "e", "--export-version", "2"]))
    assert config == TrainConfig(
        dataset="cub", data_dir="d", data_options={"holdout_fraction": 0.2, "source": "raw"},
        input_pipeline="tf.data", image_size=96, backbone="resnet50", method="adl",
        method_kwargs={"drop_rate": 0.5}, insert_at=["a", "b*"], weights="none",
        bn_momentum=0.8, freeze_bn=False, batch_size=16, epochs=3, steps_per_epoch=7, lr=0.02,
        lr_multiplier=5.0, lr_decay_epochs=2, lr_decay_rate=0.5, momentum=0.8, nesterov=True,
        weight_decay=0.001, seed=4, output_dir="o", run_name="r", strategy="none",
        devices=["/cpu:0"], mixed_precision="auto", jit=True, evaluate=False,
        cam_curve_interval=0.05, eval_batch_size=8, num_figure_examples=2,
        num_drop_stats_images=9, export=False, export_dir="e", export_version=2)


def test_config_json_reruns_a_run_and_the_flags_given_override_it(tmp_path):
    run = TrainConfig(dataset="synthetic", epochs=2, lr=0.02, method_kwargs={"beta": 2.5},
                      data_options={"num_images": 24}, output_dir=str(tmp_path)).resolved()
    path = write_config(run)
    parser = _parser()
    again = config_from_flags(parser.parse_args(["--config", path]))
    assert again == run and again.resolved() == run  # the same run directory: it resumes
    copy = config_from_flags(parser.parse_args([
        "--config", run.run_dir, "--run-name", "copy", "--drop-rate", "0.5",
        "--data-option", "num_val=8"]))
    assert copy.run_name == "copy" and copy.lr == 0.02
    assert copy.method_kwargs == {"beta": 2.5, "drop_rate": 0.5}
    assert copy.data_options == {"num_images": 24, "image_size": 96, "num_val": 8}  # recipe size
    with pytest.raises(FileNotFoundError):
        config_from_flags(parser.parse_args(["--config", str(tmp_path / "nowhere.json")]))


def test_the_scripts_import_the_installed_package_and_edit_no_sys_path():
    for folder in ("training", "benchmarks"):
        for name in sorted(os.listdir(os.path.join(REPO, folder))):
            if name.endswith(".py"):
                with open(os.path.join(REPO, folder, name), encoding="utf-8") as f:
                    assert "sys.path" not in f.read(), (folder, name)
