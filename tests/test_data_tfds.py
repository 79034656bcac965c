"""The tensorflow-datasets route from a fresh install: download_and_prepare -> as_dataset for
caltech_birds2011 and cars196, with tfds's download manager answering from small archives and
folders made here (the files the real URLs serve, laid out the same way); and what a user without
network sees. tests/conftest.py blocks the network, so nothing here can reach it.
"""
import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from keras_dgdm import data as D
from keras_dgdm.data import tfds_download
from keras_dgdm.data.validation import DataError


def _jpeg(w, h, value):
    arr = np.full((h, w, 3), value, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def downloads(monkeypatch):
    """Routes tfds's DownloadManager.download / download_and_extract to local paths: call the
    fixture with {url substring: (downloaded path, extracted path)}. Records the URLs asked."""
    asked = []

    def install(table):
        def resolve(urls, extracted):
            if isinstance(urls, dict):
                return {k: resolve(v, extracted) for k, v in urls.items()}
            if isinstance(urls, (list, tuple)):
                return [resolve(u, extracted) for u in urls]
            asked.append(urls)
            (match,) = [paths for key, paths in table.items() if key in urls]
            return match[1] if extracted else match[0]

        monkeypatch.setattr(tfds.download.DownloadManager, "download",
                            lambda self, urls: resolve(urls, False))
        monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract",
                            lambda self, urls: resolve(urls, True))
        monkeypatch.setattr(tfds_download, "unreachable_host", lambda *args, **kwargs: None)
        return asked

    return install


# ------------------------------------------------------------------------ caltech_birds2011

BIRDS = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def make_cub_download(root):
    """What CUB_200_2011.tgz and segmentations.tgz hold: 2 classes x (2 train + 1 test)."""
    extracted, segmentations = root / "extracted", root / "segmentations"
    images, labels, split, boxes, expected = [], [], [], [], {}
    members = {}
    i = 0
    for c, folder in enumerate(BIRDS):
        for k in range(3):
            i += 1
            w, h = 40 + 4 * i, 30 + 2 * i
            name = f"{folder.split('.')[1]}_{i:04d}_{i}"
            rel = f"{folder}/{name}.jpg"
            members[f"CUB_200_2011/images/{rel}"] = _jpeg(w, h, 20 * i)
            mask = np.zeros((h, w), np.uint8)
            mask[2:2 + i, 3:3 + 2 * i] = 255
            os.makedirs(segmentations / folder, exist_ok=True)
            Image.fromarray(mask).save(segmentations / folder / f"{name}.png")
            box = (k + 1.0, 2.0, 10.0 + i, 8.0 + k)  # x y width height
            images.append(f"{i} {rel}")
            labels.append(f"{i} {c + 1}")
            split.append(f"{i} {1 if k < 2 else 0}")
            boxes.append(f"{i} " + " ".join(str(v) for v in box))
            expected[name] = dict(label=c, size=(w, h), value=20 * i, mask=int(mask.sum() // 255),
                                  box=(box[0], box[1], box[0] + box[2], box[1] + box[3]),
                                  train=k < 2)
    base = extracted / "CUB_200_2011"
    os.makedirs(base)
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split), ("bounding_boxes.txt", boxes)):
        (base / name).write_text("\n".join(lines) + "\n")
    archive = root / "CUB_200_2011.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for member, payload in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return {"CUB_200_2011.tgz": (str(archive), str(extracted)),
            "segmentations.tgz": (None, str(segmentations))}, expected


def _examples(data):
    return [{k: v.numpy() for k, v in ex.items()} for ex in data.examples]


def test_caltech_birds2011_download_and_prepare_to_as_dataset(tmp_path, downloads):
    table, expected = make_cub_download(tmp_path / "dl")
    asked = downloads(table)
    tfds_dir = str(tmp_path / "tfds")
    test = D.load("cub", "test", data_dir=tfds_dir)
    assert any("CUB_200_2011.tgz" in u for u in asked) and any("segmentations" in u for u in asked)
    assert tfds.builder("caltech_birds2011", data_dir=tfds_dir).is_prepared()
    train = D.load("cub", "train", data_dir=tfds_dir, holdout_fraction=0)
    assert (train.num_examples, test.num_examples) == (4, 2)
    assert train.num_classes == 200 and test.has_masks
    for data, is_train in ((train, True), (test, False)):
        seen = []
        for ex in _examples(data):
            (name,) = [n for n, e in expected.items()
                       if e["size"] == (ex["image"].shape[1], ex["image"].shape[0])]
            want = expected[name]
            seen.append(name)
            assert want["train"] is is_train and ex["label"] == want["label"]
            assert abs(int(np.median(ex["image"])) - want["value"]) <= 2  # JPEG round trip
            np.testing.assert_allclose(ex["boxes"], [want["box"]], atol=1e-3)
            assert ex["mask"].sum() == want["mask"]
        assert len(set(seen)) == data.num_examples
    # Prepared once: a second load reads the prepared files and downloads nothing.
    asked.clear()
    D.load("cub", "test", data_dir=tfds_dir)
    assert asked == []


# ---------------------------------------------------------------------------------- cars196


def _write_annotations(path, rows):
    """A Stanford Cars devkit .mat: annotations with bbox_x1, bbox_y1, bbox_x2, bbox_y2, class,
    fname (the layout scipy.io.loadmat returns to tfds's cars196 builder)."""
    import scipy.io

    dtype = [(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    table = np.empty((1, len(rows)), dtype=dtype)
    for j, row in enumerate(rows):
        table[0, j] = tuple(np.array([[v]]) for v in row[:5]) + (np.array([row[5]]),)
    scipy.io.savemat(str(path), {"annotations": table})


def make_cars_download(root):
    """What cars_train.tgz, cars_test.tgz, car_devkit.tgz and the test annotations hold."""
    expected = {}
    rows = {"train": [], "test": []}
    for split, count in (("train", 3), ("test", 2)):
        folder = root / split / f"cars_{split}"
        os.makedirs(folder)
        for j in range(count):
            fname = f"{len(expected) + 1:05d}.jpg"
            w, h = 50 + 10 * len(expected), 40
            (folder / fname).write_bytes(_jpeg(w, h, 30 * (len(expected) + 1)))
            cls = 196 if j == 0 else j  # 1-based class ids
            box = (2, 3, 20 + j, 30)
            rows[split].append((*box, cls, fname))
            expected[fname] = dict(split=split, label=cls - 1, width=w, box=box)
    os.makedirs(root / "extra" / "devkit")
    _write_annotations(root / "extra" / "devkit" / "cars_train_annos.mat", rows["train"])
    _write_annotations(root / "cars_test_annos_withlabels.mat", rows["test"])
    table = {"cars_train.tgz": (None, str(root / "train")),
             "cars_test.tgz": (None, str(root / "test")),
             "car_devkit.tgz": (None, str(root / "extra")),
             "cars_test_annos_withlabels.mat": (None, str(root / "cars_test_annos_withlabels.mat"))}
    return table, expected


def test_cars196_download_and_prepare_to_as_dataset(tmp_path, downloads):
    table, expected = make_cars_download(tmp_path / "dl")
    asked = downloads(table)
    tfds_dir = str(tmp_path / "tfds")
    train = D.load("cars", "train", data_dir=tfds_dir, holdout_fraction=0)
    assert len(asked) == 4
    test = D.load("cars", "test", data_dir=tfds_dir)
    assert (train.num_examples, test.num_examples) == (3, 2) and train.num_classes == 196
    for data, split in ((train, "train"), (test, "test")):
        for ex in _examples(data):
            (want,) = [e for e in expected.values() if e["width"] == ex["image"].shape[1]]
            assert want["split"] == split and ex["label"] == want["label"]
            np.testing.assert_allclose(ex["boxes"], [want["box"]], atol=1e-3)


# -------------------------------------------------------------------- no network, clean error


def test_no_network_is_found_in_seconds_and_says_where_to_get_the_data(tmp_path):
    assert "data.caltech.edu" in tfds_download.unreachable_host("caltech_birds2011")
    with pytest.raises(DataError) as info:
        D.load("cub", "train", data_dir=str(tmp_path))
    message = str(info.value)
    assert message.startswith("cub: tensorflow-datasets' caltech_birds2011 is not prepared in "
                              f"{tmp_path}")
    assert "no network? Cannot connect to data.caltech.edu" in message
    assert "https://www.vision.caltech.edu/datasets/cub_200_2011/" in message
    assert "--data-dir DIR" in message
    with pytest.raises(DataError, match="cars196 is not prepared .* --data-dir DIR"):
        D.load("cars", "test", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="not prepared .* and download=False"):
        D.load("cars", "test", data_dir=str(tmp_path), download=False)


def test_failed_download_is_a_data_error_with_the_cause(tmp_path, monkeypatch):
    import requests

    monkeypatch.setattr(tfds_download, "unreachable_host", lambda *args, **kwargs: None)

    def refused(self, urls):
        raise requests.exceptions.ConnectionError("Max retries exceeded with url: /CUB.tgz\nmore")

    monkeypatch.setattr(tfds.download.DownloadManager, "download", refused)
    with pytest.raises(DataError) as info:
        D.load("cub", "test", data_dir=str(tmp_path))
    assert ("the download failed (ConnectionError: Max retries exceeded with url: /CUB.tgz). "
            "Without network") in str(info.value)


@pytest.mark.parametrize("dataset, host", [("cub", "data.caltech.edu"),
                                           ("cars", "ai.stanford.edu")])
def test_fit_without_network_ends_in_one_message(dataset, host, tmp_path, capsys, monkeypatch,
                                                 training_script):
    """``fit.py --dataset cub`` from a fresh install, no data, no network (issue: a ~50-line
    traceback inside tensorflow-datasets)."""
    from tensorflow_datasets.core import constants

    monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "tensorflow_datasets"))  # ~/...
    with pytest.raises(SystemExit) as info:
        training_script("fit").main(["--dataset", dataset, "--weights", "none",
                     "--output-dir", str(tmp_path / "runs")])
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1] == "(fit.py --debug shows the traceback)"
    assert err[0].startswith(f"fit.py: error: {dataset}: tensorflow-datasets'")
    assert str(tmp_path / "tensorflow_datasets") in err[0]
    assert f"Cannot connect to {host}" in err[0] and "--data-dir DIR" in err[0]


def test_fit_trains_on_cub_prepared_through_tfds(tmp_path, downloads, monkeypatch,
                                                 training_script):
    from tensorflow_datasets.core import constants

    table, _ = make_cub_download(tmp_path / "dl")
    downloads(table)
    monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "tensorflow_datasets"))
    result = training_script("fit").main([
        "--dataset", "cub", "--backbone", "small_vgg",
        "--weights", "none", "--image-size", "32", "--batch-size", "2", "--epochs", "1",
        "--data-option", "holdout_fraction=0.5", "--no-export", "--quiet",
        "--output-dir", str(tmp_path / "runs")])
    assert result["epochs_done"] == 1 and result["metrics"]["num_images"] == 2
