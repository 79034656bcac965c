"""Metrics on tiny cases worked by hand, streaming == one-shot, equality with the reference
rules, and every bad-input error."""
import numpy as np
import pytest

from keras_dgdm.metrics import (
    WSOLEvaluator,
    box_accuracy_curve,
    evaluate,
    loc_accuracy_curve,
    max_box_acc,
    max_box_acc_v2,
    pxap,
    topk_accuracy,
    topk_correct,
)


def _reference():
    """The cv2 reference rules; needs opencv (the test extra) and the repo root on sys.path."""
    pytest.importorskip("cv2")
    from benchmarks import reference_evaluator

    return reference_evaluator


def _block(shape, y0, y1, x0, x1, value=1.0):
    cam = np.zeros(shape)
    cam[y0:y1, x0:x1] = value
    return cam


def test_box_accuracy_curve_by_hand():
    # image 0: block at rows/cols 2..4 -> box (2, 2, 5, 5) at every threshold.
    # image 1: block at rows/cols 0..1 -> box (0, 0, 2, 2).
    cams = np.stack([_block((10, 10), 2, 5, 2, 5), _block((10, 10), 0, 2, 0, 2)])
    gts = [[[2, 2, 5, 5]],  # IoU 1
           [[0, 0, 3, 2]]]  # IoU 9 / 12 = 0.75
    curve = box_accuracy_curve(cams, gts, [0.1, 0.5], iou_thresholds=(0.5, 0.8))
    np.testing.assert_array_equal(curve, [[100.0, 100.0], [50.0, 50.0]])
    assert curve.shape == (2, 2)


def test_single_vs_multi_contour_max_box_acc():
    # The larger blob wins in single-contour mode; the GT is the smaller blob.
    cam = np.zeros((12, 12))
    cam[0:2, 0:2] = 1.0  # small blob, box (0, 0, 2, 2)
    cam[5:10, 5:10] = 1.0  # large blob
    gt = [[[0, 0, 2, 2]]]
    assert max_box_acc(cam[None], gt) == 0.0
    assert max_box_acc_v2(cam[None], gt) == 100.0


def _three_images():
    """Hand case: 6 classes.

    image 0: label 0, top-1 correct, CAM misses the GT box.
    image 1: label 1, ranked 3rd (top-5 only), CAM hits.
    image 2: label 2, top-1 correct, CAM hits.
    """
    hit = _block((10, 10), 2, 5, 2, 5)
    cams = np.stack([hit, hit, hit])
    gts = [[[6, 6, 9, 9]], [[2, 2, 5, 5]], [[2, 2, 5, 5]]]
    logits = np.array([
        [9.0, 1, 1, 1, 1, 1],
        [5.0, 3, 4, 1, 1, 1],
        [0.0, 1, 9, 1, 1, 1],
    ])
    labels = np.array([0, 1, 2])
    return cams, gts, logits, labels


def test_top1_top5_clas_and_loc_by_hand():
    cams, gts, logits, labels = _three_images()
    assert topk_correct(logits, labels, 1).tolist() == [True, False, True]
    assert topk_accuracy(logits, labels, 5) == 100.0
    np.testing.assert_allclose(loc_accuracy_curve(cams, gts, [0.5]), [200 / 3])
    np.testing.assert_allclose(
        loc_accuracy_curve(cams, gts, [0.5], topk_correct(logits, labels, 1)), [100 / 3])
    res = evaluate(cams, gts, logits, labels, cam_curve_interval=0.1, cam_threshold=0.5)
    expected = {"top1_clas": 200 / 3, "top5_clas": 100.0, "gt_known_loc": 200 / 3,
                "top1_loc": 100 / 3, "top5_loc": 200 / 3, "top1_loc_at_fixed": 100 / 3,
                "gt_known_loc_at_fixed": 200 / 3, "max_box_acc": 200 / 3}
    for key, value in expected.items():
        assert res[key] == pytest.approx(value), key
    assert res["best_cam_threshold"] == 0.0 and res["num_images"] == 3 and res["pxap"] is None


def test_pxap_perfect_constant_and_by_hand():
    mask = np.zeros((1, 4, 4), np.uint8)
    mask[0, :2, :2] = 1  # 4 of 16 pixels
    assert pxap(mask.astype(float), mask) == pytest.approx(100.0)
    assert pxap(np.full((1, 4, 4), 0.3), mask) == pytest.approx(25.0)
    # ranking pos 0.9, neg 0.6, pos 0.3, neg 0.1: AP = 1 * 0.5 + 2/3 * 0.5
    cam = np.array([[[0.9, 0.6, 0.3, 0.1]]])
    m = np.array([[[1, 0, 1, 0]]])
    assert pxap(cam, m) == pytest.approx(100 * (0.5 + 1 / 3))
    # 255 = ignored: the ignored pixel's value does not matter
    m_ign = np.array([[[1, 0, 1, 0, 255]]])
    for v in (0.0, 1.0):
        assert pxap(np.array([[[0.9, 0.6, 0.3, 0.1, v]]]), m_ign) == pytest.approx(
            100 * (0.5 + 1 / 3))


def _random_batch(n, seed):
    ref = _reference()
    cams, gts = ref.realistic_cams(n, size=32, seed=seed)
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 7))
    labels = rng.integers(0, 7, n)
    masks = (cams > 0.4).astype(np.uint8)
    masks[:, 0, :] = 255
    return cams, gts, logits, labels, masks


def test_streaming_equals_one_shot():
    cams, gts, logits, labels, masks = _random_batch(6, seed=4)
    kwargs = dict(cam_curve_interval=0.05, with_pxap=True)
    ev = WSOLEvaluator(**kwargs)
    for a, b in [(0, 2), (2, 3), (3, 6)]:
        ev.update(cams[a:b], gts[a:b], logits[a:b], labels[a:b], masks[a:b])
    one_shot = evaluate(cams, gts, logits, labels, masks, **kwargs)
    assert ev.result() == one_shot
    t = ev.cam_thresholds
    assert one_shot["max_box_acc"] == max_box_acc(cams, gts, t)
    assert one_shot["max_box_acc_v2"] == max_box_acc_v2(cams, gts, t)
    assert one_shot["pxap"] == pxap(cams, masks, t)
    curves = ev.curves()
    np.testing.assert_array_equal(curves["box_acc_multi"],
                                  box_accuracy_curve(cams, gts, t, multi_contour=True))
    assert curves["gt_known_loc"].shape == t.shape


def test_box_accuracy_curve_equals_reference():
    ref = _reference()
    cams, gts = ref.realistic_cams(6, size=40, seed=8)
    t = np.arange(0, 1, 0.02)
    for multi in (False, True):
        np.testing.assert_array_equal(
            box_accuracy_curve(cams, gts, t, multi_contour=multi),
            ref.reference_box_accuracy_curve(cams, gts, t, multi_contour=multi))


def test_bad_inputs_name_the_culprit():
    cams, gts, logits, labels = _three_images()
    ev = WSOLEvaluator(cam_curve_interval=0.1)
    with pytest.raises(ValueError, match="update"):
        ev.result()
    bad = cams.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"cams\[1\] contains NaN"):
        ev.update(bad, gts, logits, labels)
    bad = cams.copy()
    bad[2, 0, 0] = 1.5
    with pytest.raises(ValueError, match=r"cams\[2\] must have values in \[0, 1\]"):
        ev.update(bad, gts, logits, labels)
    with pytest.raises(ValueError, match=r"cams must have shape \(N, H, W\)"):
        ev.update(cams[0], gts, logits, labels)
    with pytest.raises(ValueError, match=r"gt_boxes\[1\]\[0\].*x1 < x0"):
        ev.update(cams, [gts[0], [[5, 2, 3, 5]], gts[2]], logits, labels)
    with pytest.raises(ValueError, match=r"gt_boxes\[0\] holds no box"):
        ev.update(cams, [np.zeros((0, 4)), gts[1], gts[2]], logits, labels)
    with pytest.raises(ValueError, match="one \\(k, 4\\) array per CAM"):
        ev.update(cams, gts[:2], logits, labels)
    with pytest.raises(ValueError, match=r"labels\[1\] = 9"):
        ev.update(cams, gts, logits, [0, 9, 1])
    with pytest.raises(ValueError, match="logits must have shape"):
        ev.update(cams, gts, logits[:2], labels)
    with pytest.raises(ValueError, match="masks are required"):
        WSOLEvaluator(with_pxap=True).update(cams, gts, logits, labels)
    with pytest.raises(ValueError, match=r"masks\[0\] has values"):
        evaluate(cams, gts, logits, labels, masks=np.full(cams.shape, 2))
    with pytest.raises(ValueError, match="cam_threshold"):
        WSOLEvaluator(cam_threshold=1.5)
    with pytest.raises(ValueError, match="iou_thresholds"):
        box_accuracy_curve(cams, gts, [0.5], iou_thresholds=(1.2,))
    with pytest.raises(ValueError, match="foreground"):
        pxap(cams, np.zeros(cams.shape))
    assert ev.num_images == 0  # failed updates add nothing
