"""Tests for keras_dgdm.cam: the CAM definition, cv2-compatible resize, normalisation."""
import cv2
import numpy as np
import pytest

import keras

from keras_dgdm.cam import (
    ClassActivationMaps,
    build_cam_model,
    compute_cams,
    cubic_resize_matrix,
    normalize_cams,
    resize_cams,
)
from keras_dgdm.models import CLASSIFIER_LAYER, FEATURES_LAYER, GAP_LAYER, build_wsol_model


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def reference_cam(features, weights, size):
    """wsolevaluation's steps in numpy + cv2: weighted sum, cv2 bicubic resize, min-max."""
    cam = (features * weights).sum(-1).astype("float32")
    cam = cv2.resize(cam, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    return (cam - cam.min()) / (cam.max() - cam.min())


# ----------------------------------------------------------------------------------------------
# Resize
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_hw, out_hw",
    [((7, 7), (224, 224)), ((14, 14), (224, 224)), ((28, 28), (224, 224)), ((8, 8), (64, 64)),
     ((5, 9), (33, 17)), ((20, 20), (7, 5)), ((3, 4), (100, 3)), ((1, 1), (5, 5)),
     ((6, 6), (6, 6))],
)
def test_resize_matches_cv2_inter_cubic(in_hw, out_hw):
    maps = np.random.default_rng(sum(in_hw + out_hw)).normal(size=(3,) + in_hw).astype("float32")
    ours = to_np(resize_cams(maps, out_hw))
    for i in range(3):
        ref = cv2.resize(maps[i], (out_hw[1], out_hw[0]), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(ours[i], ref, atol=1e-5, rtol=0)


def test_resize_matrix_by_hand():
    np.testing.assert_array_equal(cubic_resize_matrix(4, 4), np.eye(4, dtype="float32"))
    m = cubic_resize_matrix(2, 4)
    # Output 0: source position (0 + 0.5) * 0.5 - 0.5 = -0.25 -> floor -1, fraction 0.75.
    # Keys (a = -0.75) weights at distances 1.75, 0.75, 0.25, 1.25: -0.03515625, 0.26171875,
    # 0.87890625, -0.10546875; taps -2, -1, 0, 1 clamp to 0, 0, 0, 1.
    np.testing.assert_allclose(m[0], [1.10546875, -0.10546875], atol=1e-6)
    np.testing.assert_allclose(m[3], [-0.10546875, 1.10546875], atol=1e-6)  # mirror image
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="`in_size` must be a positive int"):
        cubic_resize_matrix(0, 4)
    with pytest.raises(ValueError, match=r"static h and w"):
        resize_cams(np.zeros((2, 3), "float32"), (4, 4))


# ----------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------


def test_normalize_by_hand_and_degenerate_maps():
    maps = np.array(
        [
            [[1.0, 3.0], [2.0, 5.0]],  # -> (x - 1) / 4
            [[7.0, 7.0], [7.0, 7.0]],  # constant -> zeros
            [[1.0, np.nan], [2.0, 5.0]],  # NaN -> zeros
            [[1.0, np.inf], [2.0, 5.0]],  # inf -> zeros
            [[-2.0, -2.0], [-2.0, 0.0]],
            [[0.0, 0.0], [0.0, 0.0]],
        ],
        "float32",
    )
    out = to_np(normalize_cams(maps))
    np.testing.assert_allclose(out[0], [[0.0, 0.5], [0.25, 1.0]])
    np.testing.assert_array_equal(out[1:4], 0.0)
    np.testing.assert_allclose(out[4], [[0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(out[5], 0.0)
    assert out.dtype == np.float32
    # A constant map stays all zeros after the (rounding) bicubic upsampling.
    upsampled = to_np(resize_cams(np.full((1, 7, 7), 3.3, "float32"), (224, 224)))
    np.testing.assert_array_equal(to_np(normalize_cams(upsampled)), 0.0)


# ----------------------------------------------------------------------------------------------
# The CAM of a crafted model
# ----------------------------------------------------------------------------------------------


def crafted_model(size, pool):
    """images (size, size, 2) -> [avg-pool] -> cam_features -> gap -> classifier (3 classes).

    The features are the (pooled) input itself, so the test sets them by hand.
    """
    images = keras.Input((size, size, 2), name="images")
    x = keras.layers.AveragePooling2D(pool)(images) if pool > 1 else images
    x = keras.layers.Identity(name=FEATURES_LAYER)(x)
    x = keras.layers.GlobalAveragePooling2D(name=GAP_LAYER)(x)
    logits = keras.layers.Dense(3, name=CLASSIFIER_LAYER)(x)
    model = keras.Model(images, logits)
    # w[:, c] for classes 0, 1, 2; the bias must not change the normalised CAM.
    kernel = np.array([[2.0, 0.0, 1.0], [-1.0, 1.0, 1.0]], "float32")
    model.get_layer(CLASSIFIER_LAYER).set_weights([kernel, np.array([5.0, -3.0, 0.5], "float32")])
    return model, kernel


def test_cam_of_a_crafted_model_equals_the_hand_computed_map():
    model, _ = crafted_model(size=3, pool=1)
    f0 = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], "float32")
    f1 = np.array([[0, 0, 0], [0, 9, 0], [0, 0, 0]], "float32")
    images = np.stack([f0, f1], -1)[None]
    # Class 0: 2 * f0 - f1 = [[0, 2, 4], [6, -1, 10], [12, 14, 16]]; min -1, max 16.
    expected0 = (np.array([[0, 2, 4], [6, -1, 10], [12, 14, 16]], "float32") + 1) / 17
    # Class 1: f1 -> one peak.  Class 2: f0 + f1 = [[0,1,2],[3,13,5],[6,7,8]]; max 13.
    expected1 = f1 / 9
    expected2 = np.array([[0, 1, 2], [3, 13, 5], [6, 7, 8]], "float32") / 13
    for cls, expected in enumerate([expected0, expected1, expected2]):
        result = compute_cams(model, images, classes=[cls])
        np.testing.assert_allclose(result.cams[0], expected, atol=1e-6)
        assert result.class_ids.tolist() == [cls]
    # Predicted class: logits = mean(F) @ W + b = (4, 1) @ W + b = (7 + 5, 1 - 3, 5 + 0.5).
    result = compute_cams(model, images)
    np.testing.assert_allclose(result.logits[0], [12.0, -2.0, 5.5], rtol=1e-6)
    assert result.class_ids.tolist() == [0]
    np.testing.assert_allclose(result.cams[0], expected0, atol=1e-6)


def test_upsampled_cam_matches_the_cv2_reference_pipeline():
    model, kernel = crafted_model(size=12, pool=3)  # 4x4 features -> 12x12 CAMs
    images = np.random.default_rng(3).uniform(0, 255, (4, 12, 12, 2)).astype("float32")
    images[3] = 42.0  # constant features -> a constant CAM -> zeros
    classes = np.array([0, 1, 2, 1])
    result = compute_cams(model, images, classes=classes, batch_size=3)
    assert result.cams.shape == (4, 12, 12) and result.cams.dtype == np.float32
    features = images.reshape(4, 4, 3, 4, 3, 2).mean(axis=(2, 4))
    for i, cls in enumerate(classes[:3]):
        expected = reference_cam(features[i], kernel[:, cls], (12, 12))
        np.testing.assert_allclose(result.cams[i], expected, atol=2e-5)
    # Constant map: ours is all zeros. (cv2's resize of a constant map is constant only up to
    # rounding, and the reference's exact min == max test then stretches that noise to [0, 1].)
    np.testing.assert_array_equal(result.cams[3], 0.0)


def test_build_cam_model_outputs_and_serialization(tmp_path):
    model = build_wsol_model("small_vgg", 3, method="dgdm", weights=None,
                             input_shape=(16, 16, 3), seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    cam_model = build_cam_model(model)
    out = cam_model.predict(images, verbose=0)
    assert set(out) == {"logits", "cams"}
    np.testing.assert_allclose(out["logits"], model.predict(images, verbose=0), rtol=1e-5,
                               atol=1e-5)
    assert out["cams"].shape == (2, 16, 16) and out["cams"].dtype == np.float32
    assert out["cams"].min() >= 0.0 and out["cams"].max() <= 1.0
    # Given classes: one map per requested class.
    by_class = build_cam_model(model, with_class_ids=True)
    for cls in range(3):
        given = by_class.predict([images, np.full(2, cls, "int32")], verbose=0)
        ref = compute_cams(model, images, classes=[cls, cls])
        np.testing.assert_allclose(given["cams"], ref.cams, atol=1e-6)
    # The CAM model is a plain functional model: it round-trips through a .keras file.
    path = str(tmp_path / "cams.keras")
    by_class.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.predict([images, np.array([2, 0], "int32")], verbose=0)
    ref = by_class.predict([images, np.array([2, 0], "int32")], verbose=0)
    np.testing.assert_allclose(again["cams"], ref["cams"], atol=1e-6)
    # And the source model still saves (the classifier is now used twice).
    model.save(str(tmp_path / "model.keras"))


def test_cam_model_traces_in_a_tf_function():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow backend only")
    model = build_wsol_model("small_vgg", 2, method="cam", weights=None, input_shape=(16, 16, 3))
    cam_model = build_cam_model(model, with_class_ids=True)
    serve = tf.function(
        lambda x, c: cam_model([x, c], training=False),
        input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32),
                         tf.TensorSpec([None], tf.int32)],
    )
    images = np.random.default_rng(1).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    out = serve(images, np.array([0, 1, 1], "int32"))
    ref = compute_cams(model, images, classes=[0, 1, 1])
    np.testing.assert_allclose(out["cams"].numpy(), ref.cams, atol=1e-6)


def test_class_activation_maps_layer_config_and_input_errors():
    layer = ClassActivationMaps(output_size=(8, 6), normalize=False, name="cams")
    clone = ClassActivationMaps.from_config(layer.get_config())
    assert (clone.output_size, clone.normalize, clone.dtype) == ((8, 6), False, "float32")
    scores = np.zeros((2, 4, 3, 5), "float32")
    scores[0, 1, 2, 4] = 1.0
    raw = to_np(layer(scores, np.array([4, 0])))
    assert raw.shape == (2, 8, 6)
    np.testing.assert_allclose(raw[0], cv2.resize(scores[0, :, :, 4], (6, 8),
                                                  interpolation=cv2.INTER_CUBIC), atol=1e-6)
    with pytest.raises(ValueError, match="`output_size`"):
        ClassActivationMaps(output_size=(8,))

    model, _ = crafted_model(size=3, pool=1)
    with pytest.raises(ValueError, match=r"`images` must have shape \(N,\) \+ \(3, 3, 2\)"):
        compute_cams(model, np.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="one entry per image"):
        compute_cams(model, np.zeros((2, 3, 3, 2)), classes=[0])
    with pytest.raises(ValueError, match=r"ints in \[0, 3\)"):
        compute_cams(model, np.zeros((1, 3, 3, 2)), classes=[3])
    with pytest.raises(ValueError, match="cam_features"):
        build_cam_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))
