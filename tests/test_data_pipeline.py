"""train_pipeline / eval_pipeline: the reference protocol on crafted inputs."""
import numpy as np
import pytest
import tensorflow as tf

from keras_dgdm import boxes as box_lib
from keras_dgdm import data as D
from keras_dgdm.data import pipeline, synthetic
from keras_dgdm.data.validation import SkipReport


def make_data(images, labels, boxes, masks=None, name="crafted"):
    """A WSOLData over in-memory arrays (boxes: list of (k, 4))."""
    k = max(len(b) for b in boxes)
    padded = np.full((len(boxes), k, 4), box_lib.PAD_VALUE, np.float32)
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b
    feats = {"label": np.asarray(labels, np.int32), "boxes": padded,
             "num_boxes": np.array([len(b) for b in boxes], np.int32)}
    # images may differ in size: keep them as encoded PNGs, as files would be
    feats["png"] = [tf.io.encode_png(im).numpy() for im in images]
    if masks is not None:
        feats["mask_png"] = [tf.io.encode_png(m[..., None]).numpy() for m in masks]
    records = tf.data.Dataset.from_tensor_slices(feats)

    def decode(r, with_mask):
        ex = {"image": pipeline.decode_image(r["png"]), "label": r["label"],
              "boxes": r["boxes"][: r["num_boxes"]]}
        if with_mask:
            ex["mask"] = pipeline.decode_mask(r["mask_png"])
        return ex

    return pipeline.WSOLData(name, "test", 10, [str(i) for i in range(10)], len(labels),
                             masks is not None, SkipReport(name, "test", len(labels)), k,
                             records, decode)


def coded_image(side):
    """Channel 0 = row, channel 1 = column: any crop / flip can be located exactly."""
    rows, cols = np.mgrid[0:side, 0:side]
    return np.stack([rows, cols, np.full_like(rows, 7)], -1).astype(np.uint8)


def test_reference_resize_size():
    assert pipeline.reference_resize_size(224) == 256
    assert pipeline.reference_resize_size(64) == 73
    assert pipeline.reference_resize_size(8) == 9


def test_train_crops_are_windows_of_the_resized_image_possibly_flipped():
    # image already at the resize side (9 for crop 8): resizing is the identity, so every output
    # must be an 8x8 window of the original, mirrored or not
    img = coded_image(9)
    data = make_data([img] * 12, list(range(10)) + [0, 1], [[[0, 0, 1, 1]]] * 12)
    images, labels = next(iter(pipeline.train_pipeline(data, 8, 12, seed=1, shuffle=False)))
    assert images.shape == (12, 8, 8, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int32 and labels.numpy().tolist() == list(range(10)) + [0, 1]
    seen = set()
    for out in np.rint(images.numpy()).astype(int):
        flipped = out[0, 0, 1] > out[0, -1, 1]
        if flipped:
            out = out[:, ::-1]
        y, x = out[0, 0, 0], out[0, 0, 1]
        np.testing.assert_array_equal(out, img[y:y + 8, x:x + 8])
        seen.add((int(y), int(x), bool(flipped)))
    assert len(seen) > 2  # crops and flips vary between examples


def _epochs(ds, n=2):
    return [np.concatenate([y.numpy() for _, y in ds]) for _ in range(n)]


def test_train_order_is_seeded_and_changes_per_epoch():
    d = D.load("synthetic", "train", num_images=40, image_size=24)
    a = pipeline.train_pipeline(d, 16, 8, seed=5)
    b = pipeline.train_pipeline(d, 16, 8, seed=5)
    ea, eb = _epochs(a), _epochs(b)
    np.testing.assert_array_equal(ea[0], eb[0])
    np.testing.assert_array_equal(ea[1], eb[1])
    assert not np.array_equal(ea[0], ea[1])  # a new order each pass
    assert sorted(ea[0].tolist()) == sorted(d.arrays.labels.tolist())  # every example once
    xa = next(iter(a))[0].numpy()
    np.testing.assert_array_equal(xa, next(iter(b))[0].numpy())  # same crops and flips
    other = np.concatenate([y.numpy() for _, y in pipeline.train_pipeline(d, 16, 8, seed=6)])
    assert not np.array_equal(other, ea[0])


def test_train_repeat_and_range():
    d = D.load("synthetic", "train", num_images=6, image_size=24)
    ds = pipeline.train_pipeline(d, 20, 4, seed=0, repeat=True)
    batches = list(ds.take(5))  # 20 examples from 6: repeats
    assert len(batches) == 5
    x = batches[0][0].numpy()
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 1  # raw pixels, not [0, 1]


def test_eval_scales_boxes_like_the_reference_and_pads():
    # 500x375 image as in CUB; exact-integer products (125 * 224 / 500 = 56) must not lose a pixel
    img = np.zeros((375, 500, 3), np.uint8)
    boxes = [[[125, 0, 499, 374], [60, 27, 385, 331]], [[1, 2, 3, 4]]]
    data = make_data([img, img[:100, :300]], [3, 4], boxes)
    batch = next(iter(pipeline.eval_pipeline(data, 224, 2, max_boxes=3)))
    assert batch["images"].shape == (2, 224, 224, 3)
    assert batch["labels"].numpy().tolist() == [3, 4]
    got = batch["boxes"].numpy()
    assert got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got[0, :2], box_lib.scale_boxes(boxes[0], (375, 500), (224, 224)))
    np.testing.assert_array_equal(got[0, 0], [56, 0, 223, 223])
    expected = box_lib.scale_boxes(boxes[1], (100, 300), (224, 224))
    np.testing.assert_array_equal(got[1, :1], expected)
    np.testing.assert_array_equal(got[0, 2], [box_lib.PAD_VALUE] * 4)
    np.testing.assert_array_equal(got[1, 1:], np.full((2, 4), box_lib.PAD_VALUE))
    assert "masks" not in batch


def test_eval_resizes_images_without_crop_and_masks_nearest():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    mask = np.zeros((20, 40), np.uint8)
    mask[:, :20] = 255
    data = make_data([img], [0], [[[0, 0, 19, 19]]], masks=[mask])
    batch = next(iter(pipeline.eval_pipeline(data, 10, 1)))
    x = batch["images"].numpy()[0]
    np.testing.assert_allclose(x[:, :4], 255, atol=1e-3)  # whole image kept: left half white
    np.testing.assert_allclose(x[:, 6:], 0, atol=1e-3)
    m = batch["masks"].numpy()[0]
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}
    np.testing.assert_array_equal(m, np.repeat([[1] * 5 + [0] * 5], 10, axis=0))
    np.testing.assert_array_equal(batch["boxes"].numpy()[0], [[0, 0, 4, 9]])


def test_eval_max_boxes_defaults_and_checks():
    img = np.zeros((8, 8, 3), np.uint8)
    data = make_data([img], [0], [[[0, 0, 1, 1], [2, 2, 3, 3]]])
    batch = next(iter(pipeline.eval_pipeline(data, 8, 1)))
    assert batch["boxes"].shape == (1, 2, 4)
    with pytest.raises(ValueError, match="max_boxes=1 is smaller than the 2 boxes"):
        pipeline.eval_pipeline(data, 8, 1, max_boxes=1)


def test_eval_on_synthetic_matches_generator_ground_truth():
    d = D.load("synthetic", "test", num_images=5, image_size=32)
    batch = next(iter(pipeline.eval_pipeline(d, 32, 5)))
    np.testing.assert_array_equal(batch["boxes"].numpy(), d.arrays.boxes)
    np.testing.assert_array_equal(batch["masks"].numpy(), d.arrays.masks)
    np.testing.assert_array_equal(batch["labels"].numpy(), d.arrays.labels)


def test_synthetic_splits_are_distinct_and_sizes_documented():
    assert synthetic.SPLIT_SIZES == {"train": 3000, "val": 500, "test": 1000}
    a = D.load("synthetic", "train", num_images=4, image_size=24)
    b = D.load("synthetic", "test", num_images=4, image_size=24)
    assert not np.array_equal(a.arrays.images, b.arrays.images)
    assert a.num_classes == 10 and a.has_masks and a.max_boxes == 1
    sizes = dict(num_train=3, num_val=2, num_test=5, image_size=24)
    assert [D.load("synthetic", s, **sizes).num_examples for s in ("train", "val", "test")] \
        == [3, 2, 5]


@pytest.mark.parametrize("kwargs, name", [
    ({"image_size": 0, "batch_size": 2}, "image_size"),
    ({"image_size": 8, "batch_size": 0}, "batch_size"),
    ({"image_size": 8.5, "batch_size": 2}, "image_size"),
])
def test_invalid_pipeline_arguments(kwargs, name):
    d = make_data([np.zeros((8, 8, 3), np.uint8)], [0], [[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match=name):
        pipeline.train_pipeline(d, **kwargs)
    with pytest.raises(ValueError, match=name):
        pipeline.eval_pipeline(d, **kwargs)
