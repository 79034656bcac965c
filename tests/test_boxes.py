import numpy as np
import pytest

from keras_dgdm import boxes


def test_iou_identical_disjoint_partial_and_degenerate():
    a = np.array([[0, 0, 9, 9]])
    assert boxes.iou(a, a)[0, 0] == 1.0
    assert boxes.iou(a, [[10, 10, 19, 19]])[0, 0] == 0.0
    # 10x10 box against a 10x10 box shifted by 5 columns: intersection 5x10 = 50,
    # union 100 + 100 - 50 = 150.
    assert boxes.iou(a, [[5, 0, 14, 9]])[0, 0] == pytest.approx(50 / 150)
    # A single-pixel box is one pixel in the +1 convention: it covers 1 of the 100 pixels.
    assert boxes.iou(a, [[3, 3, 3, 3]])[0, 0] == pytest.approx(1 / 100)
    assert boxes.iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 1.0


def test_iou_is_pairwise():
    out = boxes.iou([[0, 0, 9, 9], [0, 0, 4, 9]], [[0, 0, 9, 9], [20, 20, 30, 30], [5, 0, 9, 9]])
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[1], [0.5, 0.0, 0.0])


def test_from_normalized_yxyx_on_a_known_image():
    # A 200 (h) x 400 (w) image; tfds gives (ymin, xmin, ymax, xmax) = (0.1, 0.25, 0.5, 0.75).
    out = boxes.from_normalized_yxyx([0.1, 0.25, 0.5, 0.75], height=200, width=400)
    np.testing.assert_allclose(out, [[100, 20, 300, 100]])


def test_scale_boxes_truncates_like_the_reference():
    # 500x375 (w x h) CUB-like image resized to 224x224: x * 224 / 500, truncated.
    out = boxes.scale_boxes([[60, 27, 385, 331], [-1, -1, -1, -1]], (375, 500), (224, 224))
    np.testing.assert_array_equal(out[0], [int(60 * 224 / 500), int(27 * 224 / 375),
                                           int(385 * 224 / 500), int(331 * 224 / 375)])
    np.testing.assert_array_equal(out[0], [26, 16, 172, 197])
    np.testing.assert_array_equal(out[1], [-1, -1, -1, -1])


def test_strip_padding():
    out = boxes.strip_padding([[1, 2, 3, 4], [-1, -1, -1, -1]])
    np.testing.assert_array_equal(out, [[1, 2, 3, 4]])


@pytest.mark.parametrize(
    "bad, message",
    [
        ([[5, 0, 4, 9]], "x1 < x0"),
        ([[0, 5, 9, 4]], "y1 < y0"),
        ([[0, 0, np.nan, 9]], "NaN"),
        ([[-3, 0, 9, 9]], "negative"),
        ([[0, 0, 9]], "shape"),
    ],
)
def test_validate_boxes_rejects_malformed(bad, message):
    with pytest.raises(ValueError, match=message):
        boxes.validate_boxes(bad, name="gt_boxes")


def test_validate_boxes_checks_image_bounds():
    with pytest.raises(ValueError, match="width 50"):
        boxes.validate_boxes([[0, 0, 60, 10]], width=50, height=50)
    assert boxes.validate_boxes([[0, 0, 50, 10]], width=50, height=50).shape == (1, 4)


def test_from_normalized_yxyx_undoes_float32_storage_error():
    # tfds stores 250 / 500 etc. as float32; the pixel edge must come back as exactly 250 so
    # that eval-time truncation matches the reference (which reads the integer from disk).
    stored = np.float32([27 / 375, 60 / 500, 331 / 375, 250 / 500]).astype(np.float64)
    out = boxes.from_normalized_yxyx(stored, height=375, width=500)
    np.testing.assert_array_equal(out, [[60, 27, 250, 331]])
    np.testing.assert_array_equal(
        boxes.scale_boxes(out, (375, 500), (224, 224)), [[26, 16, 112, 197]]
    )
