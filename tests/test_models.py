"""Tests for the backbone registry, build_wsol_model and BackbonePreprocessing."""
import dataclasses

import numpy as np
import pytest

import keras

from keras_dgdm import backbones
from keras_dgdm.backbones import Backbone, get_backbone, list_backbones, register_backbone
from keras_dgdm.layers import ADL, CAGD, DGDM, SAGD
from keras_dgdm.layers.preprocessing import BackbonePreprocessing
from keras_dgdm.models import (
    CLASSIFIER_LAYER,
    FEATURES_LAYER,
    GAP_LAYER,
    METHODS,
    build_wsol_model,
    cam_layers,
    inserted_layer_names,
    new_layer_names,
)

VGG_POOLS = ["block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_conv3"]
SMALL = (32, 32, 3)


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def predecessor(model, layer_name):
    """Name of the single layer feeding ``layer_name`` in ``model``'s graph (from its config)."""
    entry = next(e for e in model.get_config()["layers"] if e["name"] == layer_name)
    (arg,) = entry["inbound_nodes"][0]["args"]
    return arg["config"]["keras_history"][0]


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


def test_registry_lists_the_four_backbones_and_rejects_unknown_names():
    assert {"vgg16", "resnet50", "inception_v3", "small_vgg"} <= set(list_backbones())
    assert get_backbone("resnet50").drop_threshold == 0.9
    assert get_backbone("vgg16").drop_threshold == 0.8
    with pytest.raises(ValueError, match=r"Unknown backbone 'vgg19'.*'resnet50'"):
        get_backbone("vgg19")
    with pytest.raises(ValueError, match="already registered"):
        register_backbone(get_backbone("vgg16"))
    with pytest.raises(ValueError, match=r"unknown methods \['dropout'\]"):
        register_backbone(dataclasses.replace(get_backbone("vgg16"), name="x",
                                              insert_after_by_method={"dropout": ()}))


def test_a_new_backbone_is_one_registry_entry(monkeypatch):
    monkeypatch.setattr(backbones, "_REGISTRY", dict(backbones._REGISTRY))

    def build(input_shape, weights):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
        x = keras.layers.MaxPooling2D(name="p1")(x)
        return keras.Model(inputs, keras.layers.Conv2D(6, 3, padding="same", name="c2")(x))

    register_backbone(
        Backbone(name="tiny", build=build, preprocessing="scale",
                 insert_after=("p1",), drop_threshold=0.7, features_layer="c2",
                 pretrained=False, min_input_size=4)
    )
    assert "tiny" in list_backbones()
    model = build_wsol_model("tiny", 3, method="adl", weights=None, input_shape=(8, 8, 3))
    assert inserted_layer_names(model) == ["adl_after_p1"]
    assert model.get_layer("adl_after_p1").drop_threshold == 0.7
    assert model.get_layer(FEATURES_LAYER).output.shape == (None, 4, 4, 6)
    # every method goes to the backbone's default positions unless it names its own
    model = build_wsol_model("tiny", 3, method="dgdm", weights=None, input_shape=(8, 8, 3))
    assert inserted_layer_names(model) == ["dgdm_after_p1"]


@pytest.fixture
def registry():
    """The method registry; methods a test registers are removed afterwards."""
    from keras_dgdm.layers import registry

    before = dict(registry.METHOD_LAYERS)
    yield registry
    registry.METHOD_LAYERS.clear()
    registry.METHOD_LAYERS.update(before)


def test_a_new_method_is_one_registry_entry_and_needs_no_backbone_edit(registry):

    @keras.saving.register_keras_serializable(package="keras_dgdm_tests")
    class Halve(keras.layers.Layer):
        def __init__(self, factor=0.5, seed=None, data_format=None, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x, training=None):
            return x * self.factor if training else x

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    registry.register_method("halve", Halve)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_method("halve", Halve)
    assert registry.list_methods()[-1] == "halve" and "factor" in registry.method_hyperparameters()
    model = build_wsol_model("small_vgg", 3, method="halve", weights=None, input_shape=SMALL,
                             factor=0.25)
    assert inserted_layer_names(model) == [
        f"halve_after_{n}" for n in get_backbone("small_vgg").positions("dgdm")]
    assert get_backbone("vgg16").positions("halve") == get_backbone("vgg16").positions("dgdm")
    assert get_backbone("vgg16").positions("adl") == ("block3_pool", "block4_pool",
                                                       "block5_conv3")


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------


def test_failed_imagenet_download_raises_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(RuntimeError) as info:
        build_wsol_model("vgg16", 2, weights="imagenet", input_shape=SMALL)
    message = str(info.value)
    assert "keras.applications.VGG16" in message and "URL fetch failure" in message
    assert "weights='/path/to/file.h5'" in message and "weights=None" in message


def test_weights_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"`weights`='.*missing.h5'.*not a file"):
        build_wsol_model("vgg16", 2, weights=str(tmp_path / "missing.h5"), input_shape=SMALL)
    with pytest.raises(ValueError, match="small_vgg' has no ImageNet weights"):
        build_wsol_model("small_vgg", 2, weights="imagenet", input_shape=SMALL)
    with pytest.raises(TypeError, match="`weights` must be"):
        build_wsol_model("small_vgg", 2, weights=3, input_shape=SMALL)


def test_weights_path_is_the_headless_application_file(tmp_path):
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=SMALL)
    kernel = base.get_layer("block1_conv1").kernel
    kernel.assign(np.full(kernel.shape, 0.25, "float32"))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    base.save_weights(path)
    model = build_wsol_model("vgg16", 2, method="cam", weights=path, input_shape=SMALL)
    np.testing.assert_array_equal(to_np(model.get_layer("block1_conv1").kernel), 0.25)


# ----------------------------------------------------------------------------------------------
# build_wsol_model
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, layer_class, positions",
    [
        ("cam", None, []),
        ("adl", ADL, ["block3_pool", "block4_pool", "block5_conv3"]),
        ("sagd", SAGD, VGG_POOLS),
        ("cagd", CAGD, VGG_POOLS),
        ("dgdm", DGDM, VGG_POOLS),
    ],
)
def test_vgg16_each_method_places_its_layers(method, layer_class, positions):
    model = build_wsol_model("vgg16", 5, method=method, weights=None, input_shape=SMALL, seed=7)
    names = inserted_layer_names(model)
    assert names == [f"{method}_after_{p}" for p in positions]
    for i, (name, position) in enumerate(zip(names, positions)):
        layer = model.get_layer(name)
        assert type(layer) is layer_class
        assert predecessor(model, name) == position
        assert layer.get_config()["seed"] == 7 + i  # distinct, deterministic seeds
        if "drop_threshold" in layer.get_config():
            assert layer.get_config()["drop_threshold"] == 0.8  # the VGG default
    # The fixed layout: preprocessing first, then ... cam_features -> gap -> classifier.
    assert model.layers[1].name == "preprocessing"
    assert model.layers[1].mode == "caffe"
    assert [l.name for l in model.layers[-3:]] == [FEATURES_LAYER, GAP_LAYER, CLASSIFIER_LAYER]
    expected_feature_source = "conv6"
    assert predecessor(model, FEATURES_LAYER) == expected_feature_source
    assert model.get_layer(FEATURES_LAYER).output.shape == (None, 2, 2, 1024)
    assert model.output.shape == (None, 5)


def test_method_kwargs_defaults_and_errors():
    model = build_wsol_model(
        "small_vgg", 3, method="dgdm", weights=None, input_shape=SMALL,
        drop_rate=0.5, block_size=2, beta=2.5,
    )
    config = model.get_layer("dgdm_after_block4_conv2_relu").get_config()
    assert (config["drop_rate"], config["block_size"], config["beta"]) == (0.5, 2, 2.5)
    assert config["drop_threshold"] == 0.8 and config["seed"] is None
    model = build_wsol_model("resnet50", 3, method="adl", weights=None, input_shape=SMALL,
                             drop_threshold=0.75)
    assert model.get_layer("adl_after_conv5_block3_out").drop_threshold == 0.75

    with pytest.raises(ValueError, match=r"Unknown method 'acol'; choose one of: cam, adl, sagd"):
        build_wsol_model("small_vgg", 3, method="acol", weights=None, input_shape=SMALL)
    with pytest.raises(ValueError, match=r"Unknown argument 'drop_prob'.*accepted: \['drop_rate'"):
        build_wsol_model("small_vgg", 3, method="adl", weights=None, input_shape=SMALL,
                         drop_prob=0.5)
    with pytest.raises(ValueError, match=r"'data_format' \(set by build_wsol_model itself\)"):
        build_wsol_model("small_vgg", 3, method="cagd", weights=None, input_shape=SMALL,
                         data_format="channels_last")
    with pytest.raises(ValueError, match="takes no layer arguments"):
        build_wsol_model("small_vgg", 3, method="cam", weights=None, input_shape=SMALL,
                         drop_rate=0.5)
    with pytest.raises(ValueError, match="`num_classes` must be a positive int"):
        build_wsol_model("small_vgg", 0, weights=None, input_shape=SMALL)
    with pytest.raises(ValueError, match=r"`input_shape` must be \(height, width, 3\)"):
        build_wsol_model("small_vgg", 2, weights=None, input_shape=(32, 32))
    with pytest.raises(ValueError, match="too small for backbone 'inception_v3'"):
        build_wsol_model("inception_v3", 2, weights=None, input_shape=SMALL)


def test_insert_at_overrides_the_default_positions():
    model = build_wsol_model("small_vgg", 2, method="sagd", weights=None, input_shape=SMALL,
                             insert_at=["block2_pool", "block4_*_relu"])
    assert inserted_layer_names(model) == [
        "sagd_after_block2_pool", "sagd_after_block4_conv1_relu", "sagd_after_block4_conv2_relu",
    ]
    with pytest.raises(ValueError, match="'block9_pool' matches no layer"):
        build_wsol_model("small_vgg", 2, method="sagd", weights=None, input_shape=SMALL,
                         insert_at="block9_pool")


def test_bn_momentum_sets_every_batch_norm():
    default = build_wsol_model("small_vgg", 2, method="cam", weights=None, input_shape=SMALL)
    bns = [l for l in default.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 8 and all(l.momentum == 0.9 for l in bns)
    model = build_wsol_model("small_vgg", 2, method="cam", weights=None, input_shape=SMALL,
                             bn_momentum=0.5)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert all(l.momentum == 0.5 and l.get_config()["momentum"] == 0.5 for l in bns)
    with pytest.raises(ValueError, match="`bn_momentum` must be in"):
        build_wsol_model("small_vgg", 2, weights=None, input_shape=SMALL, bn_momentum=1.0)


def test_small_vgg_shapes_and_a_training_step():
    model = build_wsol_model("small_vgg", 4, method="dgdm", weights=None,
                             input_shape=(64, 64, 3), seed=0)
    assert model.get_layer(FEATURES_LAYER).output.shape == (None, 8, 8, 256)
    assert model.layers[1].mode == "scale"
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    history = model.fit(x, np.array([0, 1, 2, 3]), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_logits_are_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_wsol_model("small_vgg", 3, method="adl", weights=None, input_shape=SMALL)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("block1_conv1").compute_dtype == "float16"
    assert model.output.dtype == "float32"
    assert model.get_layer(CLASSIFIER_LAYER).compute_dtype == "float32"


def test_resnet50_stride1_round_trips_through_keras_file_and_config(tmp_path):
    model = build_wsol_model("resnet50", 3, method="dgdm", weights=None, input_shape=SMALL,
                             seed=3)
    # Stride-1 conv5: 2x2 CAM feature map at 32x32 (keras' ResNet50 gives 1x1).
    assert model.get_layer(FEATURES_LAYER).output.shape == (None, 2, 2, 2048)
    assert tuple(model.get_layer("conv5_block1_0_conv").strides) == (1, 1)
    assert new_layer_names(model) == [CLASSIFIER_LAYER]
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = to_np(model(x, training=False))

    path = str(tmp_path / "resnet50_dgdm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_np(loaded(x, training=False)), expected, rtol=1e-5, atol=1e-5)
    assert inserted_layer_names(loaded) == inserted_layer_names(model)
    assert tuple(loaded.get_layer("conv5_block1_1_conv").strides) == (1, 1)
    assert loaded.get_layer("dgdm_after_conv5_block1_out").get_config()["seed"] == 4

    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(to_np(clone(x, training=False)), expected, rtol=1e-5, atol=1e-5)


def test_inception_v3_cut_gives_8x_downsampling():
    model = build_wsol_model("inception_v3", 2, method="adl", weights=None,
                             input_shape=(75, 75, 3))
    # ceil(75 / 8) = 10 (28x28 at 224); keras' own mixed7 is 3x3 at 75.
    assert model.get_layer(FEATURES_LAYER).output.shape == (None, 10, 10, 1024)
    assert model.get_layer("mixed7").output.shape[1:3] == (10, 10)
    assert inserted_layer_names(model) == [
        "adl_after_mixed2", "adl_after_mixed7", "adl_after_head_conv2",
    ]
    assert model.get_layer("adl_after_mixed7").drop_threshold == 0.9
    assert new_layer_names(model) == ["head_conv1", "head_conv2", CLASSIFIER_LAYER]
    assert model.layers[1].mode == "tf"


def test_cam_layers_and_new_layer_names():
    model = build_wsol_model("vgg16", 2, method="cam", weights=None, input_shape=SMALL)
    features, classifier = cam_layers(model)
    assert features.name == FEATURES_LAYER and classifier.units == 2
    assert new_layer_names(model) == ["conv6", CLASSIFIER_LAYER]
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="classifier")])
    with pytest.raises(ValueError, match=r"no layer\(s\) \['cam_features'\].*build_wsol_model"):
        cam_layers(other)


def test_methods_constant():
    assert METHODS == ("cam", "adl", "sagd", "cagd", "dgdm")


# ----------------------------------------------------------------------------------------------
# BackbonePreprocessing
# ----------------------------------------------------------------------------------------------


def test_preprocessing_modes_on_a_crafted_pixel():
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], "float32")  # RGB
    caffe = to_np(BackbonePreprocessing("caffe")(pixel))[0, 0, 0]
    # BGR order minus the ImageNet BGR mean.
    np.testing.assert_allclose(caffe, [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(
        to_np(BackbonePreprocessing("tf")(np.array([[[[0.0, 127.5, 255.0]]]], "float32"))),
        [[[[-1.0, 0.0, 1.0]]]],
    )
    torch = to_np(BackbonePreprocessing("torch")(pixel))[0, 0, 0]
    np.testing.assert_allclose(
        torch, (np.array([10, 20, 30]) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
        rtol=1e-5,
    )
    np.testing.assert_allclose(to_np(BackbonePreprocessing("scale")(pixel)), pixel / 255)
    np.testing.assert_allclose(to_np(BackbonePreprocessing("none")(pixel)), pixel)
    # The same as keras.applications' own preprocessing.
    np.testing.assert_allclose(
        caffe, keras.applications.vgg16.preprocess_input(pixel.copy())[0, 0, 0], rtol=1e-6
    )


def test_preprocessing_config_and_errors():
    layer = BackbonePreprocessing("torch", name="pre")
    clone = BackbonePreprocessing.from_config(layer.get_config())
    assert (clone.mode, clone.data_format, clone.name) == ("torch", "channels_last", "pre")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, BackbonePreprocessing) and restored.mode == "torch"
    with pytest.raises(ValueError, match=r"`mode` must be one of .*got 'bgr'"):
        BackbonePreprocessing("bgr")
    with pytest.raises(ValueError, match="`data_format`"):
        BackbonePreprocessing("tf", data_format="NHWC")
    with pytest.raises(ValueError, match="needs 3 RGB channels"):
        BackbonePreprocessing("caffe")(np.zeros((1, 2, 2, 4), "float32"))
    first = BackbonePreprocessing("caffe", data_format="channels_first")
    out = to_np(first(np.array([10.0, 20.0, 30.0], "float32").reshape(1, 3, 1, 1)))
    np.testing.assert_allclose(out.ravel(), [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_freeze_bn_keeps_batchnorm_statistics_and_scale_in_training():
    model = build_wsol_model("small_vgg", 3, method="dgdm", weights=None, input_shape=(32, 32, 3),
                             freeze_bn=True, seed=0)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(not l.trainable for l in bns)
    before = [np.array(w) for l in bns for w in l.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    after = [np.array(w) for l in bns for w in l.get_weights()]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    unfrozen = build_wsol_model("small_vgg", 3, method="cam", weights=None, input_shape=(32, 32, 3))
    assert all(l.trainable for l in unfrozen.layers
               if isinstance(l, keras.layers.BatchNormalization))
