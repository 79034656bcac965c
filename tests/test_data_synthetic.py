"""keras_dgdm.data.synthetic: determinism, ground truth consistency, class evidence, arguments."""
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_dgdm.data import synthetic


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(96, image_size=48, num_classes=6, seed=3)


def test_shapes_and_dtypes(data):
    assert data.images.shape == (96, 48, 48, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (96,) and data.labels.dtype == np.int32
    assert data.boxes.shape == (96, 4) and data.boxes.dtype == np.float32
    assert data.masks.shape == (96, 48, 48) and data.masks.dtype == np.uint8
    assert data.part_boxes.shape == (96, 4)
    assert set(np.unique(data.masks)) <= {0, 1}
    assert data.labels.min() >= 0 and data.labels.max() < 6
    assert len(np.unique(data.labels)) == 6  # 96 draws from 6 classes: all present


def test_same_seed_same_data_and_other_seed_other_data(data):
    again = synthetic.generate(96, image_size=48, num_classes=6, seed=3)
    for a, b in zip(data, again):
        np.testing.assert_array_equal(a, b)
    other = synthetic.generate(96, image_size=48, num_classes=6, seed=4)
    assert not np.array_equal(other.images, data.images)


def test_box_is_tight_bounds_of_mask(data):
    for box, mask in zip(data.boxes, data.masks):
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max(), ys.max()])


def test_part_lies_inside_box_and_is_much_smaller(data):
    b, p = data.boxes, data.part_boxes
    assert (p[:, 0] >= b[:, 0]).all() and (p[:, 1] >= b[:, 1]).all()
    assert (p[:, 2] <= b[:, 2]).all() and (p[:, 3] <= b[:, 3]).all()

    def area(x):
        return (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)

    ratio = area(p) / area(b)
    assert ratio.max() < 0.35 and np.median(ratio) < 0.15
    # so a box around the part alone fails IoU 0.5 against the object box
    assert (ratio < 0.5).all()


def test_part_colours_identify_the_class(data):
    defs = synthetic.class_definitions(6)
    for image, label, pb in zip(data.images, data.labels, data.part_boxes):
        cx, cy = int((pb[0] + pb[2]) / 2), int((pb[1] + pb[3]) / 2)
        centre = image[cy, cx].astype(float)
        expected = defs.part_colours[label, 0]
        # closest class centre colour is the true one (palette colours are >= 150 apart)
        assert np.abs(centre - expected).max() < 60
    # the (centre, ring) pairs of different classes differ
    pairs = {tuple(defs.part_colours[c].ravel()) for c in range(6)}
    assert len(pairs) == 6


def test_context_follows_class_when_strength_is_one():
    d = synthetic.generate(120, image_size=32, num_classes=8, seed=0, context_strength=1.0,
                           clutter=0)
    defs = synthetic.class_definitions(8)
    ctx = defs.contexts[d.labels]
    bg = np.array([img[m == 0].mean(axis=0) for img, m in zip(d.images, d.masks)])
    water, foliage = bg[ctx == 0], bg[ctx == 1]
    assert len(water) and len(foliage)
    assert (water[:, 2] > water[:, 1]).all()  # blue backgrounds
    assert (foliage[:, 1] > foliage[:, 2]).all()  # green backgrounds


def test_body_hint_zero_vs_one_changes_class_dependence():
    def body_colour_spread(hint):
        d = synthetic.generate(200, image_size=32, num_classes=4, seed=1, body_hint=hint,
                               clutter=0, noise=0)
        means = []
        for c in range(4):
            cols = [img[(m == 1)].mean(axis=0) for img, m, lab in
                    zip(d.images, d.masks, d.labels) if lab == c]
            means.append(np.std(cols, axis=0).mean())
        return np.mean(means)

    # within-class body colour spread is much smaller when the body colour is the class's
    assert body_colour_spread(1.0) < 0.5 * body_colour_spread(0.0)


@pytest.mark.parametrize("size", [24, 100])
def test_any_image_size(size):
    d = synthetic.generate(4, image_size=size, seed=0)
    assert d.images.shape == (4, size, size, 3)
    assert (d.masks.sum(axis=(1, 2)) > 0).all()


@pytest.mark.parametrize("kwargs, name", [
    ({"num_classes": 57}, "num_classes"),
    ({"num_classes": 1}, "num_classes"),
    ({"image_size": 8}, "image_size"),
    ({"body_hint": 1.5}, "body_hint"),
    ({"context_strength": -0.1}, "context_strength"),
    ({"object_scale": (0.8, 0.2)}, "object_scale"),
    ({"part_scale": (0.1, 0.5)}, "part_scale"),
    ({"clutter": -1}, "clutter"),
    ({"noise": float("nan")}, "noise"),
    ({"class_offset": -1}, "class_offset"),
])
def test_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        synthetic.generate(2, **kwargs)


def test_generator_does_not_import_tensorflow():
    # The GPU machine has JAX but no TensorFlow. `import keras_dgdm` imports Keras (to register
    # the layers), and Keras imports the backend it is told to: a non-TensorFlow backend
    # (numpy stands in for JAX here) must leave TensorFlow out.
    code = ("import sys, keras_dgdm.data.synthetic as s; s.generate(2, 32); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    env = dict(os.environ, KERAS_BACKEND="numpy")
    env_code = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert env_code.returncode == 0, env_code.stderr


def test_show_keeps_one_cue_and_everything_else():
    full = synthetic.generate(12, image_size=48, seed=5, noise=0)
    grey = np.uint8(128)
    for show in ("part", "body", "background"):
        d = synthetic.generate(12, image_size=48, seed=5, noise=0, show=show)
        for a, b in zip(full[1:], d[1:]):  # labels, boxes, masks, part boxes: unchanged
            np.testing.assert_array_equal(a, b)
    part = synthetic.generate(12, image_size=48, seed=5, noise=0, show="part")
    body = synthetic.generate(12, image_size=48, seed=5, noise=0, show="body")
    back = synthetic.generate(12, image_size=48, seed=5, noise=0, show="background")
    obj = full.masks.astype(bool)
    for i in range(12):
        # "background": the object is flat grey, the rest is the benchmark's image
        assert (back.images[i][obj[i]] == grey).all()
        np.testing.assert_array_equal(back.images[i][~obj[i]], full.images[i][~obj[i]])
        # "part": grey outside the part's box, the benchmark's part pixels inside the object
        x0, y0, x1, y1 = part.part_boxes[i].astype(int)
        outside = np.ones((48, 48), bool)
        outside[y0:y1 + 1, x0:x1 + 1] = False
        assert (part.images[i][outside] == grey).all()
        assert (part.images[i][~outside] != grey).any()
        # "body": grey off the object; no part colours: the part's centre shows the body colour
        assert (body.images[i][~obj[i]] == grey).all()
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        assert not np.array_equal(body.images[i][cy, cx], full.images[i][cy, cx])
    with pytest.raises(ValueError, match="show"):
        synthetic.generate(2, show="head")


def test_class_offset_gives_disjoint_classes():
    target = synthetic.class_definitions(10)
    source = synthetic.class_definitions(**synthetic.SOURCE_TASK)
    assert source.part_colours.shape == (30, 2, 3)
    codes = {tuple(c.ravel()) for c in target.part_colours}
    assert not codes & {tuple(c.ravel()) for c in source.part_colours}
    assert not set(map(tuple, target.body_colours)) & set(map(tuple, source.body_colours))
    # the same order: the first 10 of 36 classes are those of the 10-class benchmark
    np.testing.assert_array_equal(synthetic.class_definitions(36).part_colours[:10],
                                  target.part_colours)
    with pytest.raises(ValueError, match="num_classes"):
        synthetic.class_definitions(31, class_offset=26)
