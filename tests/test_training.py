"""Tests for keras_dgdm.train: the optimizer, schedule, config, flags, resumption, errors."""
import importlib.util
import inspect
import json
import os

import keras
import numpy as np
import pytest

from keras_dgdm import layers
from keras_dgdm import train as training
from keras_dgdm.train import RECIPES, ScaledSGD, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_script(name):
    spec = importlib.util.spec_from_file_location(
        f"_cli_{name}", os.path.join(REPO, "training", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------- optimizer


class _TwoVariables(keras.layers.Layer):
    """A toy holding one 'pretrained' and one 'new' variable."""

    def build(self, _):
        self.old = self.add_weight(shape=(2,), initializer=keras.initializers.Constant(1.0),
                                   name="old")
        self.new = self.add_weight(shape=(2,), initializer=keras.initializers.Constant(1.0),
                                   name="new")


def _toy():
    layer = _TwoVariables(name="toy")
    layer.build(None)
    return layer


def test_scaled_sgd_one_step_hand_computed():
    layer = _toy()
    opt = ScaledSGD(learning_rate=0.1, momentum=0.9, weight_decay=0.5, lr_multiplier=10.0,
                    scaled_variables=[layer.new.path])
    g = np.array([1.0, -2.0], np.float32)
    opt.apply([g, g], [layer.old, layer.new])
    # g' = g + 0.5 * w = [1.5, -1.5]; first momentum step: w - lr * g'
    np.testing.assert_allclose(layer.old.numpy(), [1 - 0.1 * 1.5, 1 + 0.1 * 1.5], rtol=1e-6)
    np.testing.assert_allclose(layer.new.numpy(), [1 - 1.0 * 1.5, 1 + 1.0 * 1.5], rtol=1e-6)
    # Second step with zero gradient: m = 0.9 m - lr * (0.5 w); w += m.
    old, new = layer.old.numpy().copy(), layer.new.numpy().copy()
    m_old, m_new = np.array([-0.15, 0.15]), np.array([-1.5, 1.5])
    opt.apply([np.zeros(2, np.float32)] * 2, [layer.old, layer.new])
    np.testing.assert_allclose(layer.old.numpy(), old + 0.9 * m_old - 0.1 * 0.5 * old, rtol=1e-5)
    np.testing.assert_allclose(layer.new.numpy(), new + 0.9 * m_new - 1.0 * 0.5 * new, rtol=1e-5)


def test_scaled_sgd_follows_schedule_and_serializes():
    layer = _toy()
    schedule = training.step_decay(0.1, steps_per_epoch=1, decay_epochs=1, decay_rate=0.5)
    opt = ScaledSGD(learning_rate=schedule, momentum=0.0, lr_multiplier=4.0,
                    scaled_variables=[layer.new.path])
    g = np.ones(2, np.float32)
    opt.apply([g, g], [layer.old, layer.new])  # step 0: lr 0.1
    opt.apply([g, g], [layer.old, layer.new])  # step 1: lr 0.05
    np.testing.assert_allclose(layer.old.numpy(), [1 - 0.1 - 0.05] * 2, rtol=1e-6)
    np.testing.assert_allclose(layer.new.numpy(), [1 - 0.4 - 0.2] * 2, rtol=1e-6)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(again, ScaledSGD)
    assert again.lr_multiplier == 4.0 and again.scaled_variables == (layer.new.path,)
    assert again.l2_weight_decay == 0.0


def test_scaled_sgd_rejects_unknown_variable_and_bad_values():
    layer = _toy()
    opt = ScaledSGD(0.1, scaled_variables=["nowhere/kernel"])
    with pytest.raises(ValueError, match="nowhere/kernel"):
        opt.build([layer.old, layer.new])
    with pytest.raises(ValueError, match="lr_multiplier"):
        ScaledSGD(0.1, lr_multiplier=0)
    with pytest.raises(ValueError, match="weight_decay"):
        ScaledSGD(0.1, weight_decay=-1)


def test_step_decay_boundaries():
    s = training.step_decay(0.01, steps_per_epoch=5, decay_epochs=2, decay_rate=0.1)
    values = [float(keras.ops.convert_to_numpy(s(step))) for step in (0, 9, 10, 19, 20)]
    np.testing.assert_allclose(values, [0.01, 0.01, 0.001, 0.001, 0.0001], rtol=1e-5)


# ------------------------------------------------------------------------------ config, flags


def test_hyperparameter_flags_come_from_the_layer_signature():
    from keras_dgdm.layers import DGDM

    sig = inspect.signature(DGDM.__init__).parameters
    expected = [n for n in sig if n not in ("self", "seed", "data_format", "kwargs")]
    assert list(layers.method_hyperparameters()) == expected
    parser = _load_script("fit").build_parser()
    flags = {a for action in parser._actions for a in action.option_strings}
    for name in expected:
        assert "--" + name.replace("_", "-") in flags
    args = parser.parse_args(["--drop-rate", "0.5", "--block-size", "adaptive", "--top-k", "none"])
    assert (args.hp_drop_rate, args.hp_block_size, args.hp_top_k) == (0.5, "adaptive", None)
    assert not hasattr(args, "hp_alpha")  # not given -> the layer's own default


def test_recipes_resolve_and_round_trip(tmp_path):
    cfg = TrainConfig(dataset="synthetic", lr=0.05).resolved()
    assert cfg.backbone == RECIPES["synthetic"]["backbone"] == "small_vgg"
    assert (cfg.image_size, cfg.lr, cfg.momentum) == (96, 0.05, 0.9)
    assert cfg.weights == "synthetic_source"  # the bundled pretrained start
    assert cfg.run_name == "synthetic-small_vgg-dgdm-96px-seed0"
    assert cfg.insert_at == ["block2_pool", "block3_pool"]  # the recipe's, its own backbone only
    assert TrainConfig(backbone="vgg16", weights="none").resolved().insert_at is None
    assert TrainConfig(method="cam").resolved().insert_at is None
    for name, recipe in RECIPES.items():
        assert recipe["momentum"] == 0.9 and 32 <= recipe["batch_size"] <= 64
        assert recipe["lr_multiplier"] == 10.0, name
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="Unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 1})


def test_every_dataset_names_its_recipe_and_an_unknown_one_has_none():
    from keras_dgdm import data as D
    from keras_dgdm.data import synthetic

    for name, spec in D.DATASETS.items():
        assert spec.name == name and spec.recipe in RECIPES and spec.layout
    assert D.get_dataset("cub").num_classes == 200 and D.get_dataset("metadata").num_classes is None
    default = inspect.signature(synthetic.load_split).parameters["num_classes"].default
    assert D.get_dataset("synthetic").num_classes == default
    with pytest.raises(ValueError, match="already registered"):
        D.register_dataset(D.get_dataset("cub"))
    D.register_dataset(D.DatasetSpec("mine", "x:y", 3, "my folder", recipe="nowhere"))
    try:
        with pytest.raises(ValueError, match="'mine' trains with recipe 'nowhere', which RECIPES"):
            TrainConfig(dataset="mine").resolved()
    finally:
        del D.DATASETS["mine"]


def test_method_kwargs_validation_messages():
    with pytest.raises(ValueError, match="--alpha does not apply to method 'adl'.*--drop-rate"):
        layers.validate_method_kwargs("adl", {"alpha": 0.5})
    with pytest.raises(ValueError, match="no hyperparameters"):
        layers.validate_method_kwargs("cam", {"drop_rate": 0.5})
    with pytest.raises(ValueError, match="drop_rate"):
        layers.validate_method_kwargs("dgdm", {"drop_rate": 1.5})
    assert layers.validate_method_kwargs("sagd", {"block_size": 2}) == {"block_size": 2}


# ---------------------------------------------------------------------------- resume, errors

TINY = dict(dataset="synthetic", data_options={"num_images": 24, "image_size": 32},
            image_size=32, batch_size=8, epochs=2, steps_per_epoch=2, evaluate=False,
            export=False, lr_decay_epochs=1)


class _Interrupted(Exception):
    pass


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise _Interrupted("killed after epoch 1")


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight = training.train(TrainConfig(output_dir=str(tmp_path), run_name="a", **TINY),
                              verbose=0)
    config = TrainConfig(output_dir=str(tmp_path), run_name="b", **TINY)
    with pytest.raises(_Interrupted):
        training.train(config, callbacks=[_StopAfterFirstEpoch()], verbose=0)
    assert training.finished_epochs(str(tmp_path / "b")) == 1
    resumed = training.train(config, verbose=0)
    # The rerun trained only the second epoch: one history row, two CSV rows in total.
    assert len(resumed["history"]["loss"]) == 1
    assert resumed["epochs_done"] == straight["epochs_done"] == 2
    log_a = training.read_csv_log(str(tmp_path / "a" / "log.csv"))
    log_b = training.read_csv_log(str(tmp_path / "b" / "log.csv"))
    assert [r["epoch"] for r in log_b] == [0, 1]
    assert log_b[1]["loss"] == pytest.approx(log_a[1]["loss"], abs=1e-6)
    # The step decay reached epoch 2's lr (0.1 x recipe lr) in both.
    assert log_b[1]["lr"] == pytest.approx(0.1 * RECIPES["synthetic"]["lr"], rel=1e-5)
    for wa, wb in zip(straight["model"].weights, resumed["model"].weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)
    # A second rerun of the finished command trains nothing and keeps the weights.
    again = training.train(config, verbose=0)
    assert again["history"] == {} and again["epochs_done"] == 2
    np.testing.assert_array_equal(again["model"].weights[0].numpy(),
                                  straight["model"].weights[0].numpy())
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["config"]["seed"] == 0 and saved["method_layers"]
    assert all(c["seed"] is not None for c in saved["method_layers"].values())
    # Another schedule in the same run directory is a different run: refused, naming the field.
    with pytest.raises(training.SetupError, match="lr_decay_epochs: saved 1, now 3"):
        training.train(TrainConfig(output_dir=str(tmp_path), run_name="b",
                                   **{**TINY, "lr_decay_epochs": 3}), verbose=0)


@pytest.mark.parametrize("num_train", [16, 12])  # every batch of 8 full / a last one of 4
def test_arrays_pipeline_trains_as_fit_on_each_epochs_arrays(num_train, tmp_path):
    """input_pipeline="arrays" gives the weights of model.fit on each epoch's epoch_arrays, one
    call per epoch (the sweep's loop before it ran through train()), to the bit. (Here, with 16
    images at 24 px, a batch dimension TensorFlow does not know, where fit on arrays gives it,
    changes the last bit of some weights.)"""
    from keras_dgdm.data import load_arrays
    from keras_dgdm.data.arrays import epoch_arrays
    from keras_dgdm.train.callbacks import EpochSeededLayers
    from keras_dgdm.train.loop import build_model, compile_model

    config = TrainConfig(
        dataset="synthetic", input_pipeline="arrays", image_size=24, batch_size=8, epochs=2,
        lr_decay_epochs=1, evaluate=False, export=False, output_dir=str(tmp_path),
        data_options={"num_train": num_train, "num_val": 8, "num_test": 8})
    trained = training.train(config, verbose=0)["model"]
    config = config.resolved()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, 10)
    compile_model(model, config, -(-num_train // 8))
    split = load_arrays("synthetic", "train", **config.data_options)
    for epoch in range(2):
        x, y = epoch_arrays(split.images, split.labels, config.seed, epoch)
        model.fit(x, y, batch_size=8, epochs=epoch + 1, initial_epoch=epoch, shuffle=False,
                  callbacks=[EpochSeededLayers()], verbose=0)
    for a, b in zip(trained.weights, model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.fixture
def no_data(monkeypatch):
    """Fails the test if the data is touched: errors must come before it."""
    import keras_dgdm.data

    def load(*args, **kwargs):
        raise AssertionError("data loaded before the error was reported")

    monkeypatch.setattr(keras_dgdm.data, "load", load)


def _fit_error(argv, capsys):
    fit = _load_script("fit")
    with pytest.raises(SystemExit) as info:
        fit.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["--dataset", "mnist"], "Unknown dataset 'mnist'; choose one of: synthetic, cub, cars"),
    (["--backbone", "vgg19"], "Unknown backbone 'vgg19'; choose one of: .*small_vgg"),
    (["--method", "has"], "Unknown method 'has'; choose one of: cam, adl, sagd, cagd, dgdm"),
    (["--drop-rate", "1.5"], "drop_rate"),
    (["--block-size", "0"], "block_size"),
    (["--method", "adl", "--beta", "2"], "--beta does not apply to method 'adl'"),
    (["--weights", "/nowhere/w.weights.h5"], "/nowhere/w.weights.h5"),
    (["--dataset", "metadata", "--data-dir", "/nowhere/ilsvrc"],
     "/nowhere/ilsvrc' does not exist. Expected .*image_ids.txt"),
    (["--epochs", "0"], "epochs must be an integer >= 1"),
    (["--strategy", "multiworker"], r"--strategy multiworker: Keras 3's model.fit under "
     r"TensorFlow's MultiWorkerMirroredStrategy is broken upstream \(keras-team/keras#20585\)"
     r".* KERAS_BACKEND=jax python training/fit.py --coordinator HOST:PORT --num-processes N"),
    (["--num-processes", "2", "--process-id", "1", "--coordinator", "127.0.0.1:9"],
     r"--num-processes 2 needs the JAX backend \(now 'tensorflow'\)"),
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:9"],
     r"--process-id must be an integer in \[0, 2\)"),
])
def test_cli_errors_before_any_data(argv, expected, no_data, capsys, tmp_path):
    err = _fit_error(argv + ["--output-dir", str(tmp_path)], capsys)
    assert err.startswith("fit.py: error:")
    import re

    assert re.search(expected, err), err


def test_cli_imagenet_download_failure_is_reported_before_data(monkeypatch, no_data, capsys,
                                                               tmp_path):
    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    err = _fit_error(["--dataset", "cub", "--image-size", "32", "--output-dir", str(tmp_path)],
                     capsys)
    assert "ImageNet weights" in err and "URL fetch failure" in err
    # The flags' words, not the Python API's (weights=None / weights='/path/to/file.h5').
    assert "--weights none" in err and "--weights PATH" in err and "weights=" not in err


def test_python_api_keeps_the_python_wording_for_the_imagenet_download(monkeypatch):
    from keras_dgdm.models import build_wsol_model

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(RuntimeError, match="weights=None") as info:
        build_wsol_model("vgg16", 2, weights="imagenet", input_shape=(32, 32, 3))
    assert "--weights" not in str(info.value)


def test_cli_bad_test_split_stops_before_training(capsys, tmp_path):
    from test_data_loaders import CLASSES, _corrupt, make_cub

    base = make_cub(tmp_path / "data")
    _corrupt(base, f"{CLASSES[0]}/img_004.jpg", "truncate")  # test images
    _corrupt(base, f"{CLASSES[1]}/img_009.jpg", "missing")
    err = _fit_error(["--dataset", "cub", "--data-dir", str(tmp_path / "data"), "--backbone",
                      "small_vgg", "--weights", "none", "--image-size", "32", "--batch-size",
                      "2", "--data-option", "holdout_fraction=0.4", "--output-dir",
                      str(tmp_path / "runs")], capsys)
    assert "cub/test: 2 of 4 examples are bad" in err, err
    assert "img_004.jpg: truncated JPEG" in err and "img_009.jpg: file is missing" in err
    assert "Traceback" not in err
    run = tmp_path / "runs" / "cub-small_vgg-dgdm-32px-seed0"
    assert not (run / "log.csv").exists() and not (run / "checkpoints").exists()


def test_cli_empty_metadata_dir_names_the_layout(capsys, tmp_path):
    err = _fit_error(["--dataset", "metadata", "--data-dir", str(tmp_path), "--backbone",
                      "small_vgg", "--weights", "none", "--output-dir", str(tmp_path / "runs")],
                     capsys)
    assert "image_ids.txt" in err or "class_labels.txt" in err, err
