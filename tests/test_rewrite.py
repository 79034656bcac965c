"""Tests for keras_dgdm.rewrite: inserting / re-configuring layers of functional models."""
import numpy as np
import pytest

import keras

from keras_dgdm.rewrite import insert_layers, reconfigure_layers, rewrite_model, select_layers


def inbound_map(model):
    """{layer name: names of the layers feeding it} in ``model``'s own graph (from its config)."""
    layers = model.get_config()["layers"]
    return {entry["name"]: _history_names(entry["inbound_nodes"]) for entry in layers}


def inbound_layer_names(model, layer_name):
    """Names of the layers feeding ``layer_name`` in ``model``'s own graph."""
    return inbound_map(model)[layer_name]


def _history_names(nodes):
    found = []

    def walk(value):
        if isinstance(value, dict):
            if "keras_history" in value:
                found.append(value["keras_history"][0])
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(nodes)
    return found


def marker(layer):
    return keras.layers.Identity(name=f"mark_after_{layer.name}")


@pytest.fixture(scope="module")
def vgg16():
    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def resnet50():
    return keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def inception_v3():
    return keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(75, 75, 3)
    )


def random_images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (2,) + shape).astype("float32")


def check_insertion(source, new, selected):
    """Count, placement, weight sharing and identical inference of an Identity insertion."""
    assert len(new.layers) == len(source.layers) + len(selected)
    inbound = inbound_map(new)
    for name in selected:
        # The predecessor of each inserted layer is the selected layer ...
        assert inbound[f"mark_after_{name}"] == [name]
        # ... and nothing but the inserted layer reads the selected layer any more.
        readers = [layer for layer, sources in inbound.items() if name in sources]
        assert readers == [f"mark_after_{name}"]
    for layer in source.layers[1:]:
        twin = new.get_layer(layer.name)
        assert twin is layer  # the same object: weights shared, not re-initialised
        for a, b in zip(layer.get_weights(), twin.get_weights()):
            np.testing.assert_array_equal(a, b)
    x = random_images(tuple(source.input.shape[1:]))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(new(x)), keras.ops.convert_to_numpy(source(x))
    )


def test_vgg16_glob_insertion_after_every_pool(vgg16):
    new = insert_layers(vgg16, "block*_pool", marker)
    selected = [f"block{i}_pool" for i in range(1, 6)]
    check_insertion(vgg16, new, selected)
    # The consumer of block1_pool now reads the inserted layer.
    assert inbound_layer_names(new, "block2_conv1") == ["mark_after_block1_pool"]


def test_resnet50_insertion_before_add_merges(resnet50):
    # conv4_block1_out is read by conv4_block2_1_conv and by the Add of conv4_block2.
    selected = ["conv4_block1_out", "conv5_block1_out", "conv5_block3_out"]
    new = insert_layers(resnet50, selected, marker)
    check_insertion(resnet50, new, selected)
    assert sorted(inbound_layer_names(new, "conv4_block2_add")) == sorted(
        ["mark_after_conv4_block1_out", "conv4_block2_3_bn"]
    )


def test_resnet50_insertion_after_merges_by_class(resnet50):
    new = insert_layers(resnet50, keras.layers.Add, marker)
    adds = [l.name for l in resnet50.layers if isinstance(l, keras.layers.Add)]
    assert len(adds) == 16  # 3 + 4 + 6 + 3 bottleneck blocks
    check_insertion(resnet50, new, adds)


def test_inception_v3_insertion_after_concatenates(inception_v3):
    new = insert_layers(inception_v3, keras.layers.Concatenate, marker)
    concats = [l.name for l in inception_v3.layers if isinstance(l, keras.layers.Concatenate)]
    # mixed0..mixed10 plus the two inner concatenations of mixed9 and mixed10 (each 2).
    assert len(concats) == 15
    check_insertion(inception_v3, new, concats)


def test_selector_forms_name_glob_list_predicate_class(vgg16):
    def names(selector):
        return [l.name for l in select_layers(vgg16, selector)]

    assert names("block3_pool") == ["block3_pool"]
    assert names("block[12]_pool") == ["block1_pool", "block2_pool"]
    assert names(["block5_conv3", "block1_pool"]) == ["block1_pool", "block5_conv3"]
    assert names(lambda l: l.name.endswith("conv3")) == [
        "block3_conv3", "block4_conv3", "block5_conv3",
    ]
    assert names(keras.layers.MaxPooling2D) == [f"block{i}_pool" for i in range(1, 6)]
    # A list mixing forms is their union, duplicates once, in model order.
    assert names(["block1_*", keras.layers.MaxPooling2D]) == [
        "block1_conv1", "block1_conv2", "block1_pool", "block2_pool", "block3_pool",
        "block4_pool", "block5_pool",
    ]
    # InputLayers are never selected.
    assert "input_layer" not in names(lambda l: True)


def test_no_match_raises_and_lists_layer_names(vgg16):
    with pytest.raises(ValueError, match=r"'block9_pool'.*matches no layer.*block1_conv1"):
        insert_layers(vgg16, "block9_pool", marker)
    with pytest.raises(ValueError, match=r"'nothing\*' matches no layer"):
        insert_layers(vgg16, ["block1_pool", "nothing*"], marker)
    with pytest.raises(ValueError, match="empty list"):
        insert_layers(vgg16, [], marker)
    with pytest.raises(TypeError, match="layer selector"):
        insert_layers(vgg16, 3, marker)


def test_bad_factory_and_name_clashes(vgg16):
    with pytest.raises(TypeError, match="must return a keras.layers.Layer"):
        insert_layers(vgg16, "block1_pool", lambda l: "not a layer")
    with pytest.raises(ValueError, match="clash"):
        insert_layers(vgg16, "block*_pool", lambda l: keras.layers.Identity(name="same"))
    with pytest.raises(ValueError, match="clash"):
        insert_layers(vgg16, "block1_pool", lambda l: keras.layers.Identity(name="block2_pool"))
    with pytest.raises(TypeError, match="Sequential"):
        insert_layers(keras.Sequential([keras.layers.Dense(2)]), "dense", marker)


def test_inserted_layers_take_effect_with_the_selected_output():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(3, name="d1", kernel_initializer="identity")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="d2", kernel_initializer="ones")(hidden))
    new = insert_layers(model, "d1", lambda l: keras.layers.Rescaling(10.0, name="times10"))
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    # d2(10 * d1(x)) = 10 * (1 + 2 + 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)), [[60.0]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), [[6.0]])


def test_resnet50_stride1_rewrite_doubles_the_map_and_keeps_weights(resnet50):
    names = ["conv5_block1_1_conv", "conv5_block1_0_conv"]
    new = reconfigure_layers(resnet50, names, strides=(1, 1))
    assert resnet50.output.shape[1:3] == (1, 1)
    assert new.output.shape[1:3] == (2, 2)
    for name in names:
        old, copy = resnet50.get_layer(name), new.get_layer(name)
        assert copy is not old and tuple(copy.strides) == (1, 1)
        assert tuple(old.strides) == (2, 2)  # the source model is untouched
        for a, b in zip(old.get_weights(), copy.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert new.get_layer("conv5_block1_2_conv") is resnet50.get_layer("conv5_block1_2_conv")
    # Same kernel: at stride 1 the 1x1 conv's output at every other position is its stride-2
    # output.
    probe_old = keras.Model(resnet50.input, resnet50.get_layer("conv4_block6_out").output)
    x = random_images((32, 32, 3), seed=1)
    feats = keras.ops.convert_to_numpy(probe_old(x))  # (2, 2, 2, 1024)
    conv = new.get_layer("conv5_block1_1_conv")
    full = keras.ops.convert_to_numpy(conv(feats))  # stride 1: (2, 2, 2, 512)
    strided = keras.ops.convert_to_numpy(resnet50.get_layer("conv5_block1_1_conv")(feats))
    np.testing.assert_allclose(full[:, ::2, ::2], strided, rtol=1e-5, atol=1e-5)


def test_reconfigure_errors(resnet50):
    with pytest.raises(ValueError, match="not config entries.*conv5_block1_1_conv"):
        reconfigure_layers(resnet50, "conv5_block1_1_conv", stride=(1, 1))
    with pytest.raises(ValueError, match="cannot keep its weights"):
        reconfigure_layers(resnet50, "conv5_block1_1_conv", filters=8)
    with pytest.raises(ValueError, match="at least one config override"):
        reconfigure_layers(resnet50, "conv5_block1_1_conv")


def test_rewrite_model_puts_an_input_layer_in_front(vgg16):
    images = keras.Input((32, 32, 3), name="raw")
    new = rewrite_model(
        vgg16, inputs=images, input_layer=keras.layers.Rescaling(0.5, name="halve")
    )
    assert new.layers[1].name == "halve"
    assert inbound_layer_names(new, "block1_conv1") == ["halve"]
    x = random_images((32, 32, 3), seed=2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(new(x)),
        keras.ops.convert_to_numpy(vgg16(0.5 * x)),
        rtol=1e-5, atol=1e-6,
    )
