"""Boxes from CAMs: hand-made maps with boxes worked out by hand, and agreement with the cv2
reference rules (benchmarks/reference_evaluator.py) on realistic maps in both modes."""
import numpy as np
import pytest

from keras_dgdm.localization import (
    best_iou_curve,
    box_from_cam,
    boxes_at_thresholds,
    cam_thresholds,
    quantize_cam,
)


def _reference():
    """The cv2 reference rules; needs opencv (the test extra) and the repo root on sys.path."""
    pytest.importorskip("cv2")
    from benchmarks import reference_evaluator

    return reference_evaluator


def _as_set(boxes):
    return sorted(map(tuple, np.asarray(boxes).tolist()))


def test_quantize_and_thresholds():
    assert quantize_cam(np.array([[0.0, 0.5, 1.0]])).tolist() == [[0, 127, 255]]
    assert quantize_cam(np.array([[0.999]], np.float32)).dtype == np.uint8
    np.testing.assert_array_equal(cam_thresholds(0.25), [0.0, 0.25, 0.5, 0.75])
    assert len(cam_thresholds()) == 100
    with pytest.raises(ValueError, match="interval"):
        cam_thresholds(0.0)


def test_unimodal_map_at_several_thresholds():
    cam = np.zeros((6, 8))
    cam[1:4, 2:5] = 0.6  # q = 153
    cam[2, 3] = 1.0  # q = 255 -> levels: t=0.5 -> 127, t=0.7 -> 178
    boxes = boxes_at_thresholds(cam, [0.0, 0.5, 0.7])
    # block: columns 2..4, rows 1..3 -> (2, 1, 4 + 1, 3 + 1); peak pixel (3, 2) -> (3, 2, 4, 3)
    assert [b.tolist() for b in boxes] == [[[2, 1, 5, 4]], [[2, 1, 5, 4]], [[3, 2, 4, 3]]]
    assert box_from_cam(cam, 0.7).tolist() == [3, 2, 4, 3]


def test_multimodal_map_single_and_multi_contour():
    cam = np.zeros((9, 9))
    cam[0:2, 0:2] = 1.0  # blob A: 2x2, contour area 1
    cam[3:6, 4:7] = 0.8  # blob B: 3x3, contour area 4, q = 204 (< level 229 at t = 0.9)
    assert boxes_at_thresholds(cam, [0.5])[0].tolist() == [[4, 3, 7, 6]]
    assert _as_set(boxes_at_thresholds(cam, [0.5], multi_contour=True)[0]) == [
        (0, 0, 2, 2), (4, 3, 7, 6)]
    assert boxes_at_thresholds(cam, [0.9], multi_contour=True)[0].tolist() == [[0, 0, 2, 2]]


def test_largest_is_polygon_area_not_pixel_count():
    cam = np.zeros((6, 10))
    cam[0, 0:7] = 1.0  # a line of 7 pixels: polygon area 0
    cam[3:5, 5:7] = 1.0  # a 2x2 square of 4 pixels: area 1 -> chosen by cv2.contourArea
    assert box_from_cam(cam, 0.5).tolist() == [5, 3, 7, 5]


def test_holes_count_in_the_outer_contour_area():
    cam = np.zeros((10, 12))
    cam[1:5, 1:5] = 1.0
    cam[2:4, 2:4] = 0.0  # 4x4 ring, 12 pixels, filled polygon area 9 (hole-free area 2)
    cam[7:9, 2:9] = 1.0  # solid 2x7 block, 14 pixels, area 6
    assert box_from_cam(cam, 0.5).tolist() == [1, 1, 5, 5]


def test_hole_contours_in_multi_contour_mode():
    cam = np.zeros((8, 8))
    cam[1:6, 1:6] = 1.0
    cam[2, 2] = 0.0  # one-pixel hole: cv2 draws a hole contour through (1..3, 1..3)
    assert _as_set(boxes_at_thresholds(cam, [0.5], multi_contour=True)[0]) == [
        (1, 1, 4, 4), (1, 1, 6, 6)]
    assert box_from_cam(cam, 0.5).tolist() == [1, 1, 6, 6]


def test_ties_go_to_the_component_found_last_in_raster_order():
    cam = np.zeros((5, 5))
    cam[0, 0] = cam[2, 2] = 1.0  # two single pixels, both of area 0
    assert box_from_cam(cam, 0.5).tolist() == [2, 2, 3, 3]


def test_all_zero_map_and_border_quirk():
    for multi in (False, True):
        out = boxes_at_thresholds(np.zeros((4, 4)), [0.0, 0.5], multi_contour=multi)
        assert [b.tolist() for b in out] == [[[0, 0, 0, 0]]] * 2
    cam = np.zeros((5, 5))
    cam[2:, 3:] = 1.0  # touches the right and bottom borders: x1 = y1 = W - 1 = 4
    assert box_from_cam(cam, 0.5).tolist() == [3, 2, 4, 4]
    cam = np.zeros((5, 5))
    cam[1:3, 1:3] = 1.0  # inside: x1 = 2 + 1 (one past the last pixel)
    assert box_from_cam(cam, 0.5).tolist() == [1, 1, 3, 3]


def test_best_iou_curve_by_hand():
    cam = np.zeros((6, 8))
    cam[1:4, 2:5] = 0.6
    cam[2, 3] = 1.0
    # t=0: box (2,1,5,4) vs GT (2,1,4,3): inter 9, union 16; t=0.7: (3,2,4,3): inter 4 / 9
    np.testing.assert_allclose(best_iou_curve(cam, [[2, 1, 4, 3]], [0.0, 0.7]), [9 / 16, 4 / 9])
    # several GT boxes: the best one counts
    np.testing.assert_allclose(
        best_iou_curve(cam, [[7, 5, 7, 5], [2, 1, 5, 4]], [0.0]), [1.0])


@pytest.mark.parametrize("multi", [False, True])
def test_equals_cv2_reference_on_realistic_maps(multi):
    ref = _reference()
    cams, gts = ref.realistic_cams(8, size=48, seed=11, noise=0.05)
    rng = np.random.default_rng(3)
    extra = [rng.uniform(0, 1, (9, 13)), rng.integers(0, 3, (12, 10)) / 2.0]
    t = cam_thresholds(0.01)
    for cam in list(cams) + extra:
        ours = boxes_at_thresholds(cam, t, multi)
        theirs = ref.reference_boxes(cam, t, multi)
        assert [_as_set(b) for b in ours] == [_as_set(b) for b in theirs]
    for cam, gt in zip(cams, gts):
        np.testing.assert_array_equal(best_iou_curve(cam, gt, t, multi),
                                      ref.reference_best_iou_curve(cam, gt, t, multi))


def test_bad_inputs():
    good = np.zeros((4, 4))
    with pytest.raises(ValueError, match="NaN"):
        box_from_cam(np.full((4, 4), np.nan), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        box_from_cam(good + 2.0, 0.5)
    with pytest.raises(ValueError, match="2-D"):
        box_from_cam(np.zeros((1, 4, 4)), 0.5)
    with pytest.raises(ValueError, match="cam_thresholds"):
        boxes_at_thresholds(good, [1.5])
    with pytest.raises(ValueError, match="x1 < x0"):
        best_iou_curve(good, [[3, 0, 1, 2]], [0.5])
    with pytest.raises(ValueError, match="at least one box"):
        best_iou_curve(good, np.zeros((0, 4)), [0.5])
