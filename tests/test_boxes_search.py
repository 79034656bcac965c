"""Boxes from CAMs: hand-made maps with boxes worked out by hand, the search's routines on
crafted inputs, and agreement with the cv2 reference rules (benchmarks/reference_evaluator.py)
on realistic and adversarial maps in both modes."""
import numpy as np
import pytest

from keras_dgdm.boxes import _components, _tables
from keras_dgdm.boxes import (
    best_iou_curve,
    best_iou_curves,
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


# ----------------------------------------------------------------------------------------------
# the search's routines on crafted inputs
# ----------------------------------------------------------------------------------------------


def _labels(binary):
    """The ``lab`` array of a sweep in which the pixels of ``binary`` are on (component 0)."""
    h, w = binary.shape
    lab = np.full((h + 2, w + 2), -1, np.int32)
    lab[1:-1, 1:-1][np.asarray(binary, bool)] = 0
    return lab.reshape(-1)


def _outer_area2(binary):
    """2 x the outer contour area of the component of the first pixel (raster order) of
    ``binary``, by ``_outer_area2``."""
    r, c = np.argwhere(binary)[0]
    return _components._outer_area2(_labels(binary), binary.shape[1] + 2,
                            (r + 1) * (binary.shape[1] + 2) + c + 1)


def _shape(rows):
    return np.array([[ch == "#" for ch in row] for row in rows])


def test_outer_border_area_by_hand():
    # polygons through the centres of the border pixels, doubled
    assert _outer_area2(_shape(["###", "###", "###"])) == 8  # 2 x 2 square
    assert _outer_area2(_shape(["####", "#..#", "#..#", "####"])) == 18  # hole filled: 3 x 3
    assert _outer_area2(_shape(["#..", "#..", "###"])) == 1  # an L: a triangle of area 1/2
    assert _outer_area2(_shape([".#.", "###", ".#."])) == 4  # a plus: a diamond of area 2
    assert _outer_area2(_shape(["#....", ".#...", "..#.."])) == 0  # a diagonal line
    assert _outer_area2(_shape(["#####"])) == 0
    assert _outer_area2(_shape(["#"])) == 0
    # only the component of the start pixel counts (the other one does not touch it)
    assert _outer_area2(_shape(["##..##", "##..##"])) == 2


def test_outer_border_area_equals_cv2_contour_area():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(5)
    for _ in range(60):
        binary = rng.random(tuple(rng.integers(2, 14, 2))) < rng.uniform(0.3, 0.8)
        n, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
        lab = _labels(binary)
        pw = binary.shape[1] + 2
        for k in range(1, n):
            comp = (labels == k).astype(np.uint8)
            contours = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
            r, c = np.argwhere(comp)[0]
            got = _components._outer_area2(lab, pw, (r + 1) * pw + c + 1)
            assert got == 2 * cv2.contourArea(contours[0]), (binary.astype(int), k)


def test_quantize_and_sort_pixels_by_hand():
    q = np.array([[1, 3, 3],
                  [0, 2, 1]])
    qp, cum, ok = _components._quantize((q + 0.5) / 255.0)
    assert ok and qp.tolist() == [[-1] * 5, [-1, 1, 3, 3, -1], [-1, 0, 2, 1, -1], [-1] * 5]
    assert cum[:5].tolist() == [0, 1, 3, 4, 6] and cum[-1] == 6  # pixels of value < v
    assert not _components._quantize(np.array([[0.5, np.nan]]))[2]
    assert not _components._quantize(np.array([[1.5]]))[2]
    order, masks = _components._sort_pixels(qp, cum)
    # increasing value, raster order within a value; packed row << 16 | col
    assert [(v >> 16, v & 0xFFFF) for v in order.tolist()] == [
        (1, 0), (0, 0), (1, 2), (1, 1), (0, 1), (0, 2)]
    # neighbours after each pixel (bits NW N NE E SE S SW W = 1 2 4 8 16 32 64 128):
    # (1, 0)=0: N, NE, E; (0, 0)=1: E, SE; (1, 2)=1: NW, N, W (3, 3 and 2: larger values);
    # (1, 1)=2: N, NE; (0, 1)=3: E (equal value, later in raster order); (0, 2)=3: none
    assert masks.tolist() == [2 | 4 | 8, 8 | 16, 1 | 2 | 128, 2 | 4, 8, 0]


def test_merge_keeps_the_larger_root_and_combines():
    at = np.zeros((3, _components._NCOL), np.int32)
    #               x0 y0 x1 y1 first count area2 euler4
    at[0, :8] = [4, 1, 6, 2, 30, 5, 2, 4]
    at[1, :8] = [1, 3, 2, 7, 50, 9, 6, 0]
    at[2, :8] = [0, 0, 0, 0, 10, 1, 0, 4]
    at[:, _components._LIVEPOS] = [0, 1, 2]
    at[:, _components._FILLED2] = [0, 12, 0]
    parent = np.arange(3, dtype=np.int32)
    live = np.array([0, 1, 2], np.int32)
    root, nlive = _components._merge(parent, at, live, 3, 0, 1)
    assert (root, nlive) == (1, 2)  # 9 pixels > 5
    assert parent.tolist() == [1, 1, 2]
    assert at[1, :8].tolist() == [1, 1, 6, 7, 30, 14, 8, 4]
    assert at[1, _components._FILLED2] == 12
    assert live[:2].tolist() == [2, 1] and at[2, _components._LIVEPOS] == 0  # 0 left, 2 took its place


def test_tables_count_one_union_per_group():
    # bit order NW N NE E SE S SW W; groups of set neighbours already joined to each other
    assert _tables._REPS8[0, 0] == 0
    assert _tables._REPS8[0b11111111, 0] == 1  # all 8 neighbours: one ring
    assert _tables._REPS8[0b00010001, 0] == 2  # NW and SE: apart
    assert _tables._REPS4[0b00001010, 0] == 2  # N and E without NE: apart in the background
    assert _tables._REPS4[0b00001110, 0] == 1  # ... joined through NE
    assert _tables._REPS4[0b00010001, 0] == 0  # diagonals only: no 4-neighbour
    # a pixel filling a one-pixel hole: its four 2x2 windows go from 3 to 4 pixels, each adds
    # 1 to 2 x the area and 1 to 4 x the Euler number (the hole is gone)
    assert _tables._D_AREA2[0b11111111] == 4 and _tables._D_EULER[0b11111111] == 4
    # a lone pixel: no area, Euler number + 1 (4 x: + 4)
    assert _tables._D_AREA2[0] == 0 and _tables._D_EULER[0] == 4
    # the packed table of the sweep holds the same numbers
    for mask in (0, 0b00010001, 0b11111111):
        t = int(_tables._TABLE8[mask])
        n = t & 7
        assert n == _tables._REPS8[mask, 0]
        assert [(t >> (3 + 3 * k)) & 7 for k in range(n)] == _tables._REPS8[mask, 1:1 + n].tolist()
        assert ((t >> 16) & 0xFF) - 128 == _tables._D_AREA2[mask]
        assert ((t >> 24) & 0xFF) - 128 == _tables._D_EULER[mask]


def test_a_ring_ties_a_block_of_the_same_filled_area():
    cam = np.zeros((9, 14))
    cam[1:6, 1:6] = 1.0
    cam[2:5, 2:5] = 0.0  # 5 x 5 ring, 16 pixels: filled area 16, hole-free area 4
    cam[2:7, 8:13] = 1.0  # 5 x 5 block: area 16, first pixel later -> wins the tie
    assert box_from_cam(cam, 0.5).tolist() == [8, 2, 13, 7]
    cam[6, 8:13] = 0.0  # 4 x 5 block: area 12 -> the ring wins
    assert box_from_cam(cam, 0.5).tolist() == [1, 1, 6, 6]


@pytest.mark.parametrize("gt, gt_area", [([[2, 2, 8, 8]], 49.0), ([[2.0, 2.0, 8.5, 8.0]], 52.5)])
def test_a_hole_box_can_win_in_multi_contour_mode(gt, gt_area):
    cam = np.zeros((12, 12))
    cam[0:10, 0:10] = 1.0
    cam[3:7, 3:7] = 0.0  # hole pixels 3..6 -> hole contour box (2, 2, 8, 8), area 49
    # single contour: the component box (0, 0, 10, 10) (area 121) contains the GT box
    np.testing.assert_array_equal(best_iou_curve(cam, gt, [0.5]), [gt_area / 121])
    # multi contour: the hole box lies inside the GT box
    np.testing.assert_array_equal(best_iou_curve(cam, gt, [0.5], multi_contour=True),
                                  [49 / gt_area])


def test_float32_and_strided_cams_give_the_same_boxes():
    rng = np.random.default_rng(2)
    cam = rng.random((20, 30))
    t = cam_thresholds(0.1)
    want = boxes_at_thresholds(cam, t, True)
    for other in (cam.astype(np.float32).astype(np.float64), np.asfortranarray(cam)):
        got = boxes_at_thresholds(other, t, True)
        assert [_as_set(b) for b in got] == [_as_set(b) for b in want]
    f32 = cam.astype(np.float32)
    assert [_as_set(b) for b in boxes_at_thresholds(f32, t)] == [
        _as_set(b) for b in boxes_at_thresholds(f32.astype(np.float64), t)]


def test_too_large_cam_is_refused():
    with pytest.raises(ValueError, match="below 32768"):
        box_from_cam(np.zeros((1, 1 << 15)), 0.5)


@pytest.mark.parametrize("multi", [False, True])
def test_equals_cv2_reference_on_adversarial_maps(multi):
    """Uniform noise, few-level maps (ties, holes, islands in holes), binary maps and smooth
    maps, every threshold 0:1:0.02; boxes as sets, and best IoUs against integer and
    fractional GT boxes."""
    ref = _reference()
    rng = np.random.default_rng(17)
    t = cam_thresholds(0.02)
    for i in range(80):
        h, w = rng.integers(2, 26, 2)
        kind = i % 4
        if kind == 0:
            cam = rng.uniform(0, 1, (h, w))
        elif kind == 1:
            cam = rng.integers(0, 4, (h, w)) / 3.0
        elif kind == 2:
            cam = (rng.random((h, w)) < 0.55).astype(float)
        else:
            cam = np.cumsum(np.cumsum(rng.normal(size=(h, w)), 0), 1)
            cam = (cam - cam.min()) / max(np.ptp(cam), 1e-12)
        ours = boxes_at_thresholds(cam, t, multi)
        theirs = ref.reference_boxes(cam, t, multi)
        assert [_as_set(b) for b in ours] == [_as_set(b) for b in theirs], (i, cam)
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        gts = [[[x0, y0, rng.integers(x0, w), rng.integers(y0, h)]],
               [[x0 * 0.5, y0 * 0.7, w - 0.6, h - 1.3], [0, 0, 1.5, 1.5]]]
        for gt in gts:
            np.testing.assert_array_equal(best_iou_curve(cam, gt, t, multi),
                                          ref.reference_best_iou_curve(cam, gt, t, multi))


def test_best_iou_curves_of_a_batch():
    cams = np.zeros((2, 8, 8))
    cams[:, 2:5, 2:5] = 1.0  # box (2, 2, 5, 5) at t = 0.5
    np.testing.assert_array_equal(
        best_iou_curves(cams, [[[2, 2, 5, 5]], [[2, 2, 3, 3], [6, 6, 7, 7]]], [0.5]),
        [[1.0], [4 / 16]])
    rng = np.random.default_rng(4)
    cams = rng.random((3, 11, 17)).astype(np.float32)
    gts = [[[1, 2, 10, 9]], [[0, 0, 5.5, 5], [3, 3, 16, 10]], [[4, 4, 4, 4]]]
    t = cam_thresholds(0.05)
    for multi in (False, True):
        np.testing.assert_array_equal(
            best_iou_curves(cams, gts, t, multi),
            [best_iou_curve(c, g, t, multi) for c, g in zip(cams, gts)])
    bad = cams.copy()
    bad[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"cams\[2\] contains NaN"):
        best_iou_curves(bad, gts, t)
    with pytest.raises(ValueError, match=r"gt_boxes\[1\]\[1\].*x1 < x0"):
        best_iou_curves(cams, [gts[0], [[0, 0, 1, 1], [5, 0, 2, 3]], gts[2]], t)
    with pytest.raises(ValueError, match=r"gt_boxes\[2\] must hold at least one box"):
        best_iou_curves(cams, [gts[0], gts[1], np.zeros((0, 4))], t)
    with pytest.raises(ValueError, match="one \\(k, 4\\) array per CAM"):
        best_iou_curves(cams, gts[:2], t)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        best_iou_curves(cams[0], gts, t)
