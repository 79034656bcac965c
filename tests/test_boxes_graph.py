"""In-graph boxes (keras_dgdm.boxes.graph) against hand-made masks and the reference rule."""
import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import tensorflow as tf

from keras_dgdm.boxes.graph import (
    boxes_from_cams,
    fill_holes,
    label_components,
    quantize_cams,
    threshold_cams,
)
from keras_dgdm.boxes import box_from_cam, quantize_cam


def reference_box(cam, threshold):
    """The wsolevaluation rule, written out with OpenCV (independent of keras_dgdm)."""
    height, width = cam.shape
    q = (cam.astype(np.float64) * 255).astype(np.uint8)
    _, binary = cv2.threshold(q, int(threshold * np.max(q)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return np.array([0, 0, 0, 0])
    x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
    return np.array([x, y, min(x + w, width - 1), min(y + h, height - 1)])


def library_box(cam, threshold):
    return np.asarray(box_from_cam(cam, threshold)).reshape(4)


def boxes(cams, threshold):
    return np.asarray(boxes_from_cams(np.asarray(cams, "float32"), threshold))


def mask_cam(mask):
    """A CAM that is 1 on ``mask`` and 0 elsewhere, batch of one."""
    return np.asarray(mask, "float32")[None]


def test_quantize_matches_uint8_cast():
    cams = np.random.default_rng(0).random((2, 5, 7)).astype("float32")
    cams[0, 0, :3] = [0.0, 1.0, 0.5]
    got = np.asarray(quantize_cams(cams))
    np.testing.assert_array_equal(got, (cams * 255).astype(np.uint8))
    np.testing.assert_array_equal(got, np.stack([quantize_cam(c) for c in cams]))
    assert got[0, 0, :3].tolist() == [0, 255, 127]


def test_threshold_rounds_in_float64_like_python_int():
    # q max = 10: int(0.7 * 10) = 7 in float64 (6 in float32), so q = 7 is background.
    q = np.array([[[10, 8, 7, 6]]], "float32")
    cams = (q + 0.5) / 255.0
    want = [[[True, True, False, False]]]
    np.testing.assert_array_equal(np.asarray(threshold_cams(cams, 0.7)), want)
    np.testing.assert_array_equal(np.asarray(threshold_cams(cams, tf.constant(0.7, tf.float64))), want)


def test_labels_diagonal_joins_in_8_not_in_4():
    mask = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], bool)
    np.testing.assert_array_equal(
        np.asarray(label_components(mask)), [[[9, 0, 0], [0, 9, 0], [0, 0, 9]]]
    )
    np.testing.assert_array_equal(
        np.asarray(label_components(mask, connectivity=4)), [[[1, 0, 0], [0, 5, 0], [0, 0, 9]]]
    )


def test_labels_long_snake_is_one_component():
    mask = np.zeros((1, 15, 15), bool)
    mask[0, ::2, :] = True  # rows 0, 2, ..., 14
    mask[0, 1::4, -1] = True  # joined at the right end of rows 1, 5, 9, 13
    mask[0, 3::4, 0] = True  # and at the left end of rows 3, 7, 11
    assert np.unique(np.asarray(label_components(mask))[mask]).tolist() == [15 * 15]


def test_fill_holes_keeps_channels_to_the_border_open():
    mask = np.zeros((1, 6, 6), bool)
    mask[0, 1:5, 1:5] = True
    mask[0, 2:4, 2:4] = False  # a 2x2 hole
    filled = np.asarray(fill_holes(mask))
    assert filled[0, 1:5, 1:5].all() and filled.sum() == 16
    mask[0, 2, 4] = False  # a channel from the hole to the background outside
    mask[0, 2, 3] = False
    np.testing.assert_array_equal(np.asarray(fill_holes(mask)), mask)


def test_nested_island_and_its_hole_are_filled_into_the_ring():
    mask = np.zeros((1, 13, 13), bool)
    mask[0, 1:10, 1:10] = True
    mask[0, 2:9, 2:9] = False  # the ring's hole (rows/cols 2..8)
    mask[0, 4:7, 4:7] = True  # an island inside it...
    mask[0, 5, 5] = False  # ...with its own hole
    filled = np.asarray(fill_holes(mask))
    assert filled[0, 1:10, 1:10].all() and filled.sum() == 81
    labels = np.asarray(label_components(mask))
    assert labels[0, 9, 9] == 9 * 13 + 9 + 1 and labels[0, 6, 6] == 6 * 13 + 6 + 1
    cam = mask[0].astype("float32")
    cam[11, 0:13] = 1.0  # a 13-pixel line below: contour area 0
    np.testing.assert_array_equal(boxes(mask_cam(cam), 0.5), [[1, 1, 10, 10]])
    np.testing.assert_array_equal(reference_box(cam, 0.5), [1, 1, 10, 10])


def test_labels_are_per_image_in_a_batch():
    mask = np.zeros((2, 2, 3), bool)
    mask[0, 0, 0] = True
    mask[1, 1, 1:] = True
    np.testing.assert_array_equal(
        np.asarray(label_components(mask)), [[[1, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 6, 6]]]
    )


def test_rectangle_box_and_right_edge_quirk():
    cam = np.zeros((8, 8))
    cam[2:4, 1:6] = 1.0  # rows 2..3, cols 1..5 -> x1 = 5 + 1, y1 = 3 + 1
    np.testing.assert_array_equal(boxes(mask_cam(cam), 0.5), [[1, 2, 6, 4]])
    cam = np.zeros((8, 8))
    cam[5:8, 4:8] = 1.0  # touches the right and bottom borders: min(7 + 1, 8 - 1) = 7
    np.testing.assert_array_equal(boxes(mask_cam(cam), 0.5), [[4, 5, 7, 7]])


def test_largest_is_contour_area_not_pixel_count():
    cam = np.zeros((10, 12))
    cam[1, 0:10] = 1.0  # a line: 10 pixels, contour area 0
    cam[5:7, 5:7] = 1.0  # a 2x2 square: 4 pixels, contour area 1
    np.testing.assert_array_equal(boxes(mask_cam(cam), 0.5), [[5, 5, 7, 7]])
    np.testing.assert_array_equal(reference_box(cam.astype("float32"), 0.5), [5, 5, 7, 7])


def test_ring_beats_solid_block_with_the_same_pixel_count():
    cam = np.zeros((12, 14))
    cam[1:6, 1:6] = 1.0
    cam[2:5, 2:5] = 0.0  # ring: 16 pixels, contour area 4 * 4 = 16 (hole included)
    cam[6:10, 8:12] = 1.0  # block: 16 pixels, contour area 3 * 3 = 9
    np.testing.assert_array_equal(boxes(mask_cam(cam), 0.5), [[1, 1, 6, 6]])


def test_tie_goes_to_the_component_starting_last_in_raster_order():
    cam = np.zeros((9, 9))
    cam[1:3, 5:7] = 1.0  # starts at flat index 1 * 9 + 5 = 14
    cam[4:6, 1:3] = 1.0  # starts at 4 * 9 + 1 = 37: the reference keeps this one
    np.testing.assert_array_equal(boxes(mask_cam(cam), 0.5), [[1, 4, 3, 6]])
    np.testing.assert_array_equal(reference_box(cam.astype("float32"), 0.5), [1, 4, 3, 6])


def test_nothing_above_threshold_gives_zero_box():
    cams = np.zeros((2, 6, 6), "float32")
    cams[1] = 0.5  # flat: q = 127 > int(0.3 * 127) everywhere, the whole image is one blob
    np.testing.assert_array_equal(boxes(cams, 0.3), [[0, 0, 0, 0], [0, 0, 5, 5]])
    np.testing.assert_array_equal(boxes(cams, 1.0), [[0, 0, 0, 0], [0, 0, 0, 0]])


def test_agrees_with_reference_on_smooth_random_cams():
    rng = np.random.default_rng(1)
    noise = rng.random((24, 24, 40))
    for sigma, block in ((0.7, noise[:8]), (1.5, noise[8:16]), (3.0, noise[16:])):
        cams = np.stack([ndi.gaussian_filter(c, sigma) for c in block])
        low, high = cams.min((1, 2), keepdims=True), cams.max((1, 2), keepdims=True)
        cams = ((cams - low) / (high - low)).astype("float32")
        for threshold in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95):
            got = boxes(cams, threshold)
            want = np.stack([library_box(c, threshold) for c in cams])
            np.testing.assert_array_equal(got, want, err_msg=f"sigma={sigma} t={threshold}")
            opencv = np.stack([reference_box(c, threshold) for c in cams])
            np.testing.assert_array_equal(got, opencv, err_msg=f"sigma={sigma} t={threshold}")


def test_runs_in_tf_function_with_unknown_shapes():
    fn = tf.function(
        lambda cams, t: boxes_from_cams(cams, t),
        input_signature=[
            tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([], tf.float64),
        ],
    )
    cam = np.zeros((1, 7, 9), "float32")
    cam[0, 1:3, 2:5] = 1.0
    np.testing.assert_array_equal(fn(cam, tf.constant(0.5, tf.float64)).numpy(), [[2, 1, 5, 3]])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="cams must have shape"):
        boxes_from_cams(np.zeros((4, 4), "float32"), 0.5)
    with pytest.raises(ValueError, match="connectivity must be 4 or 8"):
        label_components(np.zeros((1, 3, 3), bool), connectivity=6)
