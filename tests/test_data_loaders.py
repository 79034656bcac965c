"""keras_dgdm.data loaders on generated fixtures: raw CUB, wsolevaluation metadata, mocked tfds.

Every fixture is made here (PIL images in tmp_path); nothing touches the network.
"""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_dgdm import boxes as box_lib
from keras_dgdm import data as D
from keras_dgdm.data import cub, metadata
from keras_dgdm.data.validation import DataError

CLASSES = ["001.Red_bird", "002.Blue_bird"]


def _image(w, h, value):
    arr = np.full((h, w, 3), value, np.uint8)
    arr[: h // 2, : w // 2] = (250, 10, 10)
    return Image.fromarray(arr)


def make_cub(root, segmentations=True):
    """A 2-class CUB_200_2011 folder: 3 train + 2 test images per class, sizes 40x30 / 30x40."""
    base = root / "CUB_200_2011"
    lines = {"images": [], "labels": [], "split": [], "boxes": []}
    i = 0
    for c, cname in enumerate(CLASSES):
        os.makedirs(base / "images" / cname, exist_ok=True)
        if segmentations:
            os.makedirs(root / "segmentations" / cname, exist_ok=True)
        for k in range(5):
            i += 1
            w, h = (40, 30) if k % 2 == 0 else (30, 40)
            rel = f"{cname}/img_{i:03d}.jpg"
            _image(w, h, 60 + 20 * k).save(base / "images" / rel, quality=95)
            if segmentations:
                mask = np.zeros((h, w), np.uint8)
                mask[5:20, 4:15] = 255
                mask[0, 0] = 51  # one annotator in five: still object with threshold 0
                Image.fromarray(mask).save(root / "segmentations" / f"{rel[:-4]}.png")
            lines["images"].append(f"{i} {rel}")
            lines["labels"].append(f"{i} {c + 1}")
            lines["split"].append(f"{i} {1 if k < 3 else 0}")
            lines["boxes"].append(f"{i} {k}.0 2.0 {10 + k}.0 12.0")
    for name, key in (("images.txt", "images"), ("image_class_labels.txt", "labels"),
                      ("train_test_split.txt", "split"), ("bounding_boxes.txt", "boxes")):
        (base / name).write_text("\n".join(lines[key]) + "\n")
    (base / "classes.txt").write_text("\n".join(f"{c + 1} {n}" for c, n in enumerate(CLASSES)))
    return base


def _examples(data):
    return [{k: v.numpy() for k, v in ex.items()} for ex in data.examples]


# ----------------------------------------------------------------------------- raw CUB


def test_raw_cub_splits_labels_boxes_and_masks(tmp_path):
    make_cub(tmp_path)
    test = D.load("cub", "test", data_dir=str(tmp_path))
    assert (test.num_examples, test.num_classes, test.has_masks) == (4, 2, True)
    assert test.class_names == CLASSES
    ex = _examples(test)
    # test images are k = 3, 4 of each class: ids 4, 5, 9, 10; box (k, 2, 10 + 2k, 12 + 2) = x+w
    assert [e["label"] for e in ex] == [0, 0, 1, 1]
    np.testing.assert_array_equal(ex[0]["boxes"], [[3, 2, 16, 14]])
    np.testing.assert_array_equal(ex[1]["boxes"], [[4, 2, 18, 14]])
    assert ex[0]["image"].shape == (40, 30, 3) and ex[1]["image"].shape == (30, 40, 3)
    assert ex[1]["image"][0, 0].tolist()[0] > 200  # red corner survives decoding
    mask = ex[1]["mask"]
    assert mask.shape == (30, 40) and mask.dtype == np.uint8
    assert mask[5:20, 4:15].all() and mask.sum() == 15 * 11 + 1  # the 51-valued pixel counts


def test_raw_cub_holdout_is_stratified_disjoint_and_seeded(tmp_path):
    make_cub(tmp_path)
    kw = dict(data_dir=str(tmp_path), holdout_fraction=0.34, masks=False)
    train = D.load("cub", "train", **kw)
    val = D.load("cub", "val", **kw)
    assert train.num_examples == 4 and val.num_examples == 2  # round(0.34 * 3) = 1 per class
    assert sorted(e["label"] for e in _examples(val)) == [0, 1]
    paths = lambda d: {r["path"].numpy() for r in d.records}  # noqa: E731
    assert not paths(train) & paths(val)
    assert paths(val) == paths(D.load("cub", "val", **kw))
    full = D.load("cub", "train", data_dir=str(tmp_path), holdout_fraction=0)
    assert full.num_examples == 6
    with pytest.raises(ValueError, match="holdout_fraction"):
        D.load("cub", "val", data_dir=str(tmp_path), holdout_fraction=0)


def test_raw_cub_val_from_metadata_train_fullsup(tmp_path):
    base = make_cub(tmp_path)
    meta = tmp_path / "metadata" / "CUB" / "val"
    meta.mkdir(parents=True)
    rel = f"{CLASSES[1]}/img_006.jpg"
    (meta / "image_ids.txt").write_text(rel + "\n")
    (meta / "class_labels.txt").write_text(f"{rel},1\n")
    (meta / "image_sizes.txt").write_text(f"{rel},40,30\n")
    (meta / "localization.txt").write_text(f"{rel},1,2,30,25\n{rel},3,4,5,6\n")
    val = D.load("cub", "val", data_dir=str(tmp_path),
                 val_metadata_dir=str(tmp_path / "metadata" / "CUB"))
    assert val.num_examples == 1 and val.max_boxes == 2 and val.num_classes == 200
    np.testing.assert_array_equal(_examples(val)[0]["boxes"], [[1, 2, 30, 25], [3, 4, 5, 6]])
    train = D.load("cub", "train", data_dir=str(base),
                   val_metadata_dir=str(tmp_path / "metadata" / "CUB"))
    assert train.num_examples == 6  # the whole official train split


# ----------------------------------------------------------------------------- bad input


def _corrupt(base, rel, how):
    path = base / "images" / rel
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"this is not an image at all")
    elif how == "truncate":
        noisy = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
        Image.fromarray(noisy).save(path, quality=95)  # mostly entropy-coded data
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 3 // 4])  # headers intact, end of data lost
    elif how == "missing":
        path.unlink()
    elif how == "grayscale":
        Image.open(path).convert("L").save(path, format="JPEG")
    elif how == "cmyk":
        Image.open(path).convert("CMYK").save(path, format="JPEG")
    elif how == "png":
        Image.open(path).save(path, format="PNG")


@pytest.mark.parametrize("how, reason", [
    ("garbage", "not a readable image"),
    ("truncate", "truncated JPEG"),
    ("missing", "file is missing"),
])
def test_bad_image_is_skipped_and_reported_or_an_error(tmp_path, how, reason):
    base = make_cub(tmp_path)
    rel = f"{CLASSES[0]}/img_004.jpg"  # a test image
    _corrupt(base, rel, how)
    test = D.load("cub", "test", data_dir=str(tmp_path), max_bad_fraction=0.5)
    assert test.num_examples == 3 and test.report.num_skipped == 1
    path, why = test.report.skipped[0]
    assert path.endswith(rel) and reason in why
    assert len(_examples(test)) == 3  # the epoch runs to its end
    with pytest.raises(DataError, match=f"img_004.jpg.*{reason}"):
        D.load("cub", "test", data_dir=str(tmp_path), on_bad="error")
    # default tolerance is 5%: 1 bad image in 4 means the folder is not what it claims
    with pytest.raises(DataError, match="max_bad_fraction"):
        D.load("cub", "test", data_dir=str(tmp_path))


@pytest.mark.parametrize("how, note", [
    ("grayscale", "grayscale image converted to RGB"),
    ("cmyk", "CMYK image converted to RGB"),
    ("png", "PNG data in a .jpg file (decoded by content)"),
])
def test_unusual_but_valid_images_are_converted_and_noted(tmp_path, how, note):
    base = make_cub(tmp_path)
    _corrupt(base, f"{CLASSES[0]}/img_004.jpg", how)
    test = D.load("cub", "test", data_dir=str(tmp_path), on_bad="error")
    assert test.num_examples == 4 and test.report.notes[note] == 1
    image = _examples(test)[0]["image"]
    assert image.shape == (40, 30, 3)
    corner = image[0, 0].astype(int)
    if how == "grayscale":
        assert corner[0] == corner[1] == corner[2]
    else:
        assert corner[0] > 200 and corner[1] < 60  # still red


@pytest.mark.parametrize("line, reason", [
    ("4 30.0 2.0 -20.0 10.0", "x1 < x0"),  # negative width
    ("4 50.0 50.0 5.0 5.0", "outside"),  # image is 30x40
])
def test_bad_box_is_skipped_or_an_error(tmp_path, line, reason):
    base = make_cub(tmp_path)
    txt = (base / "bounding_boxes.txt").read_text().splitlines()
    txt[3] = line
    (base / "bounding_boxes.txt").write_text("\n".join(txt))
    test = D.load("cub", "test", data_dir=str(tmp_path), max_bad_fraction=0.5)
    assert test.num_examples == 3 and reason in test.report.skipped[0][1]
    with pytest.raises(DataError, match=reason):
        D.load("cub", "test", data_dir=str(tmp_path), on_bad="error")


def test_box_partly_outside_is_clipped(tmp_path):
    base = make_cub(tmp_path)
    txt = (base / "bounding_boxes.txt").read_text().splitlines()
    txt[3] = "4 20.0 30.0 50.0 50.0"  # image 4 is 30 wide, 40 high
    (base / "bounding_boxes.txt").write_text("\n".join(txt))
    test = D.load("cub", "test", data_dir=str(tmp_path), on_bad="error")
    np.testing.assert_array_equal(_examples(test)[0]["boxes"], [[20, 30, 30, 40]])
    assert test.report.notes["box partly outside the image, clipped to it"] == 1


def test_empty_or_wrongly_laid_out_folder_says_where_to_get_data(tmp_path):
    with pytest.raises(DataError, match="CUB_200_2011.tgz.*Expected layout"):
        D.load("cub", "train", data_dir=str(tmp_path), source="raw")
    with pytest.raises(DataError, match="is not a folder"):
        D.load("cub", "train", data_dir=str(tmp_path / "nope"), source="raw")
    base = make_cub(tmp_path)
    (base / "train_test_split.txt").unlink()
    with pytest.raises(DataError, match="train_test_split.txt is missing.*CUB_200_2011.tgz"):
        D.load("cub", "train", data_dir=str(tmp_path))  # auto: partial raw layout -> raw


def test_inconsistent_or_malformed_index_is_an_error(tmp_path):
    base = make_cub(tmp_path)
    labels = (base / "image_class_labels.txt").read_text().splitlines()
    (base / "image_class_labels.txt").write_text("\n".join(labels[:-1]))
    with pytest.raises(DataError, match="image_class_labels.txt has no line for 1 image id"):
        D.load("cub", "train", data_dir=str(tmp_path))
    (base / "image_class_labels.txt").write_text("\n".join(labels[:-1] + ["10 3"]))
    with pytest.raises(DataError, match=r"image_class_labels.txt:10: class id 3 is not in 1..2"):
        D.load("cub", "train", data_dir=str(tmp_path))
    (base / "image_class_labels.txt").write_text("\n".join(labels[:-1] + ["10 two"]))
    with pytest.raises(DataError, match=r"image_class_labels.txt:10: class id must be an integer"):
        D.load("cub", "train", data_dir=str(tmp_path))
    # blank lines are skipped but still counted in the line numbers of later errors
    (base / "image_class_labels.txt").write_text("\n".join(labels[:2] + ["", "x 1 2"]))
    with pytest.raises(DataError, match=r"image_class_labels.txt:4: expected 2 space-separated"):
        D.load("cub", "train", data_dir=str(tmp_path))
    (base / "image_class_labels.txt").write_text("\n".join(labels))
    (base / "bounding_boxes.txt").write_text("1 0 0 5\n")
    with pytest.raises(DataError, match=r"bounding_boxes.txt:1: expected 5"):
        D.load("cub", "train", data_dir=str(tmp_path))


# ----------------------------------------------------------------------------- metadata


def make_metadata(tmp_path):
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    (images / "b").mkdir()
    _image(50, 40, 90).save(images / "a" / "1.jpg")
    _image(60, 30, 90).save(images / "b" / "2.jpg")
    _image(20, 20, 90).save(images / "b" / "3.jpg")
    split = tmp_path / "meta" / "test"
    split.mkdir(parents=True)
    ids = ["a/1.jpg", "b/2.jpg", "b/3.jpg"]
    (split / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (split / "class_labels.txt").write_text("a/1.jpg,0\nb/2.jpg,1\nb/3.jpg,1\n")
    (split / "image_sizes.txt").write_text("a/1.jpg,50,40\nb/2.jpg,60,30\nb/3.jpg,20,20\n")
    (split / "localization.txt").write_text(
        "a/1.jpg,1,2,30,25\nb/2.jpg,0,0,59,29\nb/2.jpg,10,5,20,15\nb/3.jpg,0,0,19,19\n")
    return images, tmp_path / "meta", split


def test_metadata_loader_reads_boxes_per_line_in_order(tmp_path):
    images, meta, _ = make_metadata(tmp_path)
    data = D.load("metadata", "test", data_dir=str(images), metadata_dir=str(meta))
    assert (data.num_examples, data.num_classes, data.max_boxes) == (3, 2, 2)
    assert data.class_names == ["a", "b"]
    ex = _examples(data)
    assert [e["label"] for e in ex] == [0, 1, 1]
    np.testing.assert_array_equal(ex[1]["boxes"], [[0, 0, 59, 29], [10, 5, 20, 15]])
    assert ex[1]["image"].shape == (30, 60, 3)


def test_metadata_size_mismatch_is_a_bad_example(tmp_path):
    images, meta, split = make_metadata(tmp_path)
    (split / "image_sizes.txt").write_text("a/1.jpg,50,40\nb/2.jpg,61,30\nb/3.jpg,20,20\n")
    data = D.load("metadata", "test", data_dir=str(images), metadata_dir=str(meta),
                  max_bad_fraction=0.5)
    assert data.num_examples == 2
    assert "image is 60x30 but the index says 61x30" in data.report.skipped[0][1]


def test_metadata_format_errors(tmp_path):
    images, meta, split = make_metadata(tmp_path)
    kw = dict(data_dir=str(images), metadata_dir=str(meta))
    (split / "localization.txt").write_text("a/1.jpg,m.png,ignore.png\n")
    with pytest.raises(DataError, match="localization.txt:1: this looks like a mask"):
        D.load("metadata", "test", **kw)
    (split / "localization.txt").unlink()
    with pytest.raises(DataError, match="localization.txt is missing; evaluation splits"):
        D.load("metadata", "test", **kw)
    (split / "class_labels.txt").write_text("a/1.jpg,0\nb/2.jpg,x\n")
    with pytest.raises(DataError, match="class_labels.txt:2: class label must be an integer"):
        D.load("metadata", "test", **kw)
    (split / "class_labels.txt").write_text("a/1.jpg,0\nc/9.jpg,1\n")
    with pytest.raises(DataError, match="class_labels.txt:2: image id 'c/9.jpg' is not in"):
        D.load("metadata", "test", **kw)
    with pytest.raises(DataError, match="no train/ folder"):
        D.load("metadata", "train", **kw)


def test_ilsvrc_without_folders_says_what_is_needed():
    with pytest.raises(DataError, match="image-net.org.*wsolevaluation"):
        D.load("ilsvrc", "val")


# ----------------------------------------------------------------------------- tfds (mocked)


@pytest.fixture
def hosts_reachable(monkeypatch):
    """The download hosts answer (the mocked tfds never downloads anything)."""
    from keras_dgdm.data import tfds_download

    monkeypatch.setattr(tfds_download, "unreachable_host", lambda *args, **kwargs: None)


def _mock_tfds(images, bboxes, labels, masks=None):
    """``as_dataset_fn`` for tfds.testing.mock_data yielding our known examples, honouring
    SkipDecoding (encoded bytes) like a real tfds dataset would."""

    def as_dataset(self, split, decoders=None, **kwargs):
        enc = lambda a: tf.io.encode_png(a).numpy()  # noqa: E731
        skip = decoders or {}
        feats = {
            "image": [enc(i) if "image" in skip else i for i in images],
            "label": np.array(labels, np.int64),
            "bbox": np.array(bboxes, np.float32),
        }
        if masks is not None:
            feats["segmentation_mask"] = [enc(m[..., None]) for m in masks]
        return tf.data.Dataset.from_tensor_slices(feats)

    return tfds.testing.mock_data(as_dataset_fn=as_dataset,
                                  policy=tfds.testing.MockPolicy.USE_CODE)


def test_tfds_cub_converts_normalised_yxyx_boxes_on_a_known_image(hosts_reachable):
    img = np.zeros((40, 50, 3), np.uint8)
    img[10:30, 5:45] = 200
    bbox = [0.25, 0.1, 0.75, 0.9]  # ymin xmin ymax xmax
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 5:45] = 255
    with _mock_tfds([img], [bbox], [7], masks=[mask]):
        data = D.load("cub", "test")
        ex = _examples(data)[0]
    assert data.num_classes == 200 and data.has_masks and data.num_examples == 1
    np.testing.assert_array_equal(ex["image"], img)
    expected = box_lib.from_normalized_yxyx(np.float32(bbox), 40, 50)
    np.testing.assert_allclose(ex["boxes"], expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ex["boxes"], [[5, 10, 45, 30]], atol=1e-5)
    assert ex["label"] == 7 and ex["mask"].sum() == 20 * 40


def test_tfds_cars_and_split_slicing(hosts_reachable):
    img = np.full((20, 30, 3), 80, np.uint8)
    with _mock_tfds([img], [[0.0, 0.5, 1.0, 1.0]], [195]):
        data = D.load("cars", "train")
        ex = _examples(data)[0]
    assert data.num_classes == 196 and not data.has_masks
    np.testing.assert_allclose(ex["boxes"], [[15, 0, 30, 20]], atol=1e-5)
    from keras_dgdm.data.pipeline import holdout_split_spec
    assert holdout_split_spec("train", 0.1) == "train[:90%]"
    assert holdout_split_spec("val", 0.1) == "train[90%:]"
    assert holdout_split_spec("test", 0.1) == "test"
    with pytest.raises(ValueError, match="holdout_fraction"):
        holdout_split_spec("val", 0.123)


def test_tfds_builder_gets_data_dir_and_split(monkeypatch, tmp_path):
    seen = {}

    class Builder:
        name, data_dir = "caltech_birds2011", str(tmp_path)

        def is_prepared(self):
            return True

        def as_dataset(self, **kwargs):
            seen.update(kwargs)
            raise RuntimeError("stop here")

    def fake_builder(name, **kwargs):
        seen.update(kwargs, name=name)
        return Builder()

    monkeypatch.setattr(tfds, "builder", fake_builder)
    with pytest.raises(RuntimeError, match="stop here"):
        D.load("cub", "train", data_dir=str(tmp_path))  # empty folder: tfds's data_dir
    assert seen["name"] == "caltech_birds2011" and seen["data_dir"] == str(tmp_path)
    assert seen["split"] == "train[:90%]" and seen["shuffle_files"] is False


def test_load_rejects_unknown_names():
    assert tuple(D.DATASETS) == ("synthetic", "cub", "cars", "ilsvrc", "metadata")
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'; choose one of: synthetic"):
        D.load("mnist", "train")
    with pytest.raises(ValueError, match="'cub' has no in-memory loader.*works with: synthetic"):
        D.load_arrays("cub", "train")
    with pytest.raises(ValueError, match="split must be one of"):
        D.load("synthetic", "validation")
    with pytest.raises(ValueError, match="on_bad must be one of"):
        D.load("metadata", "test", data_dir=".", metadata_dir=".", on_bad="ignore")
    with pytest.raises(ValueError, match="verify must be one of"):
        D.load("cub", "test", data_dir=".", source="raw", verify="all")
