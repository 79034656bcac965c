"""The pretrained start of the synthetic benchmark: headless small_vgg weights, the bundled name,
and training/pretrain.py end to end on a tiny source task."""
import numpy as np
import pytest

from keras_dgdm import build_wsol_model
from keras_dgdm.backbones import (BUNDLED_WEIGHTS, resolve_weights, save_small_vgg_features,
                                  small_vgg_features)


def _kernel(model, name):
    return np.asarray(model.get_layer(name).get_weights()[0])


def test_headless_weights_round_trip_and_conv6_is_new(tmp_path):
    trained = build_wsol_model("small_vgg", 4, method="cam", weights=None, input_shape=(32, 32, 3))
    path = save_small_vgg_features(trained, str(tmp_path / "f.weights.h5"))
    # another input size: conv weights do not depend on it
    loaded = build_wsol_model("small_vgg", 4, method="dgdm", weights=path, input_shape=(48, 48, 3),
                              seed=3)
    for name in ("block1_conv1", "block4_conv2", "block4_conv2_bn"):
        for a, b in zip(trained.get_layer(name).get_weights(), loaded.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(_kernel(trained, "conv6"), _kernel(loaded, "conv6"))  # new layer
    assert [l.name for l in small_vgg_features((32, 32, 3)).layers][-1] == "block4_conv2_relu"


def test_bundled_name_resolves_and_a_missing_file_says_how_to_remake_it(monkeypatch, tmp_path):
    assert resolve_weights("synthetic_source", "small_vgg") == \
        BUNDLED_WEIGHTS[("small_vgg", "synthetic_source")]
    assert resolve_weights("synthetic_source", "vgg16") == "synthetic_source"  # not vgg16's
    assert resolve_weights("/x.h5", "small_vgg") == "/x.h5"
    monkeypatch.setitem(BUNDLED_WEIGHTS, ("small_vgg", "synthetic_source"),
                        str(tmp_path / "missing.weights.h5"))
    with pytest.raises(FileNotFoundError, match="training/pretrain.py"):
        build_wsol_model("small_vgg", 4, weights="synthetic_source", input_shape=(32, 32, 3))


def test_the_bundled_file_is_shipped_and_loads():
    model = build_wsol_model("small_vgg", 10, method="cam", weights="synthetic_source",
                             input_shape=(32, 32, 3))
    assert np.abs(_kernel(model, "block1_conv1")).sum() > 0


def test_pretrain_script_end_to_end(training_script, tmp_path, capsys):
    pretrain = training_script("pretrain")
    out = tmp_path / "w.weights.h5"
    path = pretrain.main(["--image-size", "32", "--num-train", "48", "--num-val", "16",
                          "--epochs", "1", "--output-dir", str(tmp_path / "runs"),
                          "--output", str(out), "--quiet"])
    assert path == str(out) and out.stat().st_size > 0
    assert "wrote" in capsys.readouterr().out
    config = (tmp_path / "runs" / "pretrain-synthetic-source" / "config.json").read_text()
    assert '"class_offset": 26' in config and '"num_classes": 30' in config
    model = build_wsol_model("small_vgg", 10, weights=str(out), input_shape=(32, 32, 3))
    assert model.get_layer("block1_conv1").get_weights()[0].shape == (3, 3, 3, 32)
