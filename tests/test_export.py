"""SavedModel export: every signature, loaded in a fresh process without keras_dgdm."""
import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dgdm.boxes import box_from_cam, scale_boxes
from keras_dgdm.cam import compute_cams
from keras_dgdm.export import SIGNATURES, export_saved_model, load_metadata
from keras_dgdm.models import build_wsol_model, inserted_layer_names

SIZE = 32
THRESHOLD = 0.55
NAMES = ["cardinal", "sparrow", "wren"]

# Runs in a fresh interpreter: plain TensorFlow, no keras_dgdm (what TF Serving has).
LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    version_dir, inputs_path, out_path, inserted = sys.argv[1:5]
    data = np.load(inputs_path)
    loaded = tf.saved_model.load(version_dir)
    sig = loaded.signatures
    results = {}
    images = tf.constant(data["images"])
    png_list = [open(f, "rb").read() for f in data["png_files"]]
    pngs = tf.constant(png_list)
    jpeg = tf.constant([open(str(data["jpeg_file"]), "rb").read()])
    class_ids = tf.constant(data["class_ids"])
    calls = {
        "serving_default": lambda: sig["serving_default"](images=images),
        "cam": lambda: sig["cam"](images=images),
        "cam_for_class": lambda: sig["cam_for_class"](images=images, class_ids=class_ids),
        "serving_bytes": lambda: sig["serving_bytes"](image_bytes=pngs),
        "cam_bytes": lambda: sig["cam_bytes"](image_bytes=pngs),
        "cam_for_class_bytes": lambda: sig["cam_for_class_bytes"](
            image_bytes=pngs, class_ids=class_ids[:2]),
        "cam_bytes_jpeg": lambda: sig["cam_bytes"](image_bytes=jpeg),
    }
    for name, call in calls.items():
        for key, value in call().items():
            results[f"{name}/{key}"] = value.numpy()
    errors = {}
    bad_calls = {
        "wrong_shape": lambda: sig["cam"](images=tf.zeros((1, 16, 16, 3))),
        "wrong_rank": lambda: sig["serving_default"](images=tf.zeros((32, 32, 3))),
        "out_of_range": lambda: sig["cam"](images=images / 255.0 - 0.5),
        "not_an_image": lambda: sig["cam_bytes"](image_bytes=tf.constant([png_list[0], b"hello"])),
        "bad_class": lambda: sig["cam_for_class"](images=images, class_ids=class_ids + 7),
        "class_count": lambda: sig["cam_for_class"](images=images, class_ids=class_ids[:1]),
    }
    for name, call in bad_calls.items():
        try:
            call()
            errors[name] = None
        except tf.errors.InvalidArgumentError as e:
            errors[name] = e.message
    op_names, op_types = set(), set()
    for fn in sig.values():
        graph = fn.graph.as_graph_def()
        for node in list(graph.node) + [n for f in graph.library.function for n in f.node_def]:
            op_names.add(node.name)
            op_types.add(node.op)
    meta = {
        "errors": errors,
        "inserted_ops": sorted(n for n in op_names if any(l in n for l in inserted.split(","))),
        "backbone_ops": sum("block1_conv1" in n for n in op_names),
        "random_ops": sorted(t for t in op_types if "random" in t.lower()),
        "cam_threshold": float(loaded.cam_threshold.numpy()),
        "python_cam": loaded.cam(images)["boxes"].numpy().tolist(),
        "keras_dgdm_imported": any(m.startswith("keras_dgdm") for m in sys.modules),
    }
    np.savez(out_path, **results)
    with open(out_path + ".json", "w") as f:
        json.dump(meta, f)
    """
)


def _encode_png(image):
    return tf.io.encode_png(tf.constant(image, tf.uint8)).numpy()


def _decode_like_the_graph(png):
    image = tf.io.decode_image(png, channels=3, expand_animations=False)
    resized = tf.image.resize(image, (SIZE, SIZE), antialias=True)
    return tf.clip_by_value(resized, 0.0, 255.0).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    model = build_wsol_model(
        "small_vgg", 3, method="dgdm", weights=None, input_shape=(SIZE, SIZE, 3), seed=0
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 255, (8, SIZE, SIZE, 3)).astype("float32")
    model.fit(train, rng.integers(0, 3, 8), epochs=1, batch_size=4, verbose=0)
    path = export_saved_model(
        model, root / "toy", cam_threshold=THRESHOLD, class_names=NAMES, num_top_classes=2, version=3
    )

    # Images with a bright blob, so the CAMs (and boxes) differ between images.
    images = rng.uniform(0, 60, (4, SIZE, SIZE, 3)).astype("float32")
    for i, (y, x) in enumerate([(4, 4), (16, 20), (20, 6), (10, 12)]):
        images[i, y:y + 9, x:x + 9] = 240.0
    odd = [rng.uniform(0, 255, (40, 50, 3)), rng.uniform(0, 255, (24, 30, 3))]
    pngs = [_encode_png(im) for im in odd]
    jpeg = tf.io.encode_jpeg(tf.constant(odd[0], tf.uint8)).numpy()
    class_ids = np.array([2, 0, 1, 2], "int32")
    inputs = root / "inputs.npz"
    files = [str(root / f"image{i}.png") for i in range(len(pngs))]
    for f, data in zip(files + [str(root / "image.jpg")], pngs + [jpeg]):
        with open(f, "wb") as handle:
            handle.write(data)
    np.savez(inputs, images=images, png_files=np.array(files), jpeg_file=str(root / "image.jpg"),
             class_ids=class_ids)
    out = str(root / "outputs.npz")
    script = root / "load.py"
    script.write_text(LOADER)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(script), str(path), str(inputs), out,
         ",".join(inserted_layer_names(model))],
        capture_output=True, text=True, env=env, timeout=300, cwd=str(root),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out + ".json") as f:
        meta = json.load(f)
    return dict(model=model, path=path, images=images, pngs=pngs, class_ids=class_ids,
                out=dict(np.load(out, allow_pickle=True)), meta=meta)


def test_layout_and_metadata(exported):
    path = exported["path"]
    assert path.endswith(os.path.join("toy", "3"))
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    meta = load_metadata(path)
    assert meta["cam_threshold"] == THRESHOLD and meta["class_names"] == NAMES
    assert meta["image_size"] == [SIZE, SIZE] and meta["signatures"] == list(SIGNATURES)
    assert exported["meta"]["cam_threshold"] == THRESHOLD
    assert not exported["meta"]["keras_dgdm_imported"]


def test_serving_default_matches_keras(exported):
    out, model = exported["out"], exported["model"]
    logits = model.predict(exported["images"], verbose=0)
    probs = np.asarray(tf.nn.softmax(logits))
    np.testing.assert_allclose(out["serving_default/probabilities"], probs, atol=1e-5)
    top = np.argsort(-probs, axis=1)[:, :2]
    np.testing.assert_array_equal(out["serving_default/top_k_classes"], top)
    np.testing.assert_allclose(
        out["serving_default/top_k_scores"], np.take_along_axis(probs, top, 1), atol=1e-5
    )
    assert out["serving_default/top_k_class_names"][0].tolist() == [
        NAMES[i].encode() for i in top[0]
    ]


@pytest.mark.parametrize("signature", ["cam", "cam_for_class"])
def test_cams_and_boxes_match_python(exported, signature):
    out, model, images = exported["out"], exported["model"], exported["images"]
    given = exported["class_ids"] if signature == "cam_for_class" else None
    ref = compute_cams(model, images, classes=given)
    cams = out[f"{signature}/cams"]
    assert cams.shape == (4, SIZE, SIZE)
    np.testing.assert_allclose(cams, ref.cams, atol=1e-5)
    np.testing.assert_array_equal(out[f"{signature}/classes"], ref.class_ids)
    probs = np.asarray(tf.nn.softmax(ref.logits))
    np.testing.assert_allclose(
        out[f"{signature}/scores"], probs[np.arange(4), ref.class_ids], atol=1e-5
    )
    assert [n.decode() for n in out[f"{signature}/class_names"]] == [
        NAMES[i] for i in ref.class_ids
    ]
    boxes = out[f"{signature}/boxes"]
    want = np.stack([box_from_cam(c, THRESHOLD) for c in ref.cams])
    np.testing.assert_array_equal(boxes, want)
    np.testing.assert_array_equal(boxes, np.stack([box_from_cam(c, THRESHOLD) for c in cams]))
    assert len({tuple(b) for b in boxes}) > 1, "crafted images should give different boxes"


def test_bytes_signatures_decode_resize_and_map_boxes_back(exported):
    out, model = exported["out"], exported["model"]
    decoded = np.stack([_decode_like_the_graph(p) for p in exported["pngs"]])
    probs = np.asarray(tf.nn.softmax(model.predict(decoded, verbose=0)))
    np.testing.assert_allclose(out["serving_bytes/probabilities"], probs, atol=1e-5)
    np.testing.assert_array_equal(out["serving_bytes/image_sizes"], [[40, 50], [24, 30]])
    for name, classes in (("cam_bytes", None), ("cam_for_class_bytes", exported["class_ids"][:2])):
        ref = compute_cams(model, decoded, classes=classes)
        np.testing.assert_allclose(out[f"{name}/cams"], ref.cams, atol=1e-5)
        boxes = np.stack([box_from_cam(c, THRESHOLD) for c in ref.cams])
        np.testing.assert_array_equal(out[f"{name}/boxes"], boxes)
        np.testing.assert_array_equal(out[f"{name}/classes"], ref.class_ids)
        mapped = [scale_boxes(b, (SIZE, SIZE), hw) for b, hw in zip(boxes, [(40, 50), (24, 30)])]
        np.testing.assert_array_equal(out[f"{name}/boxes_in_image"], np.concatenate(mapped))
    assert out["cam_bytes_jpeg/image_sizes"].tolist() == [[40, 50]]
    assert out["cam_bytes_jpeg/cams"].shape == (1, SIZE, SIZE)


def test_bad_requests_fail_with_clear_messages(exported):
    errors = exported["meta"]["errors"]
    assert "images must be float32 with shape [N, 32, 32, 3]" in errors["wrong_shape"]
    assert "[1 16 16 3]" in errors["wrong_shape"]
    assert "images must be float32 with shape" in errors["wrong_rank"]
    assert "images must be raw RGB values in [0, 255]" in errors["out_of_range"]
    assert "image_bytes must be encoded JPEG, PNG, GIF or BMP" in errors["not_an_image"]
    assert "these elements are not:] [1]" in errors["not_an_image"]
    assert "class_ids must be in [0, 3)" in errors["bad_class"]
    assert "class_ids must be int32 with shape [N]" in errors["class_count"]


def test_graph_has_no_dgdm_or_random_ops(exported):
    meta = exported["meta"]
    assert meta["backbone_ops"] > 0  # the op-name scan does see the model's layers
    assert meta["inserted_ops"] == [] and meta["random_ops"] == []
    assert meta["python_cam"] == exported["out"]["cam/boxes"].tolist()


def test_saved_model_cli_lists_the_signatures_and_input_shapes(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    # The console script pip installs with TensorFlow, or the module it runs.
    command = [cli] if os.path.exists(cli) else [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    shown = subprocess.run(
        [*command, "show", "--all", "--dir", exported["path"]], capture_output=True, text=True,
        timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)Method name", shown.stdout, re.S))
    assert set(SIGNATURES) <= set(blocks)

    def declared(signature, name):
        found = re.search(rf"inputs\['{name}'\] tensor_info:\s+dtype: (\w+)\s+shape: ([^\n]+)",
                          blocks[signature])
        return found.groups() if found else None

    for name in ("serving_default", "cam", "cam_for_class"):
        assert declared(name, "images") == ("DT_FLOAT", f"(-1, {SIZE}, {SIZE}, 3)")
    for name in ("cam_for_class", "cam_for_class_bytes"):
        assert declared(name, "class_ids") == ("DT_INT32", "(-1)")
    for name in ("serving_bytes", "cam_bytes", "cam_for_class_bytes"):
        assert declared(name, "image_bytes") == ("DT_STRING", "(-1)")
    assert "outputs['boxes_in_image']" in blocks["cam_bytes"]


def test_bad_arguments(exported, tmp_path):
    model = exported["model"]
    with pytest.raises(ValueError, match="cam_threshold must be a number in"):
        export_saved_model(model, tmp_path / "m" / "1", cam_threshold=1.5)
    with pytest.raises(ValueError, match="class_names must have one name per class"):
        export_saved_model(model, tmp_path / "m" / "1", class_names=["a"])
    with pytest.raises(ValueError, match="version directory ending in an integer"):
        export_saved_model(model, tmp_path / "m")
    with pytest.raises(ValueError, match="image_size must be the model's input size"):
        export_saved_model(model, tmp_path / "m" / "1", image_size=(64, 64))
    with pytest.raises(ValueError, match="num_top_classes must be a positive int"):
        export_saved_model(model, tmp_path / "m" / "1", num_top_classes=0)
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(model, os.path.dirname(exported["path"]), version=3)
    with pytest.raises(FileNotFoundError, match="version directory written by"):
        load_metadata(tmp_path)


def _client():
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "training", "serving_client.py")
    spec = importlib.util.spec_from_file_location("serving_client", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serving_client_payload_and_drawing(exported, tmp_path):
    client = _client()
    payload = client.rest_payload(b"\x89PNG", class_id=2)
    assert payload["signature_name"] == "cam_for_class_bytes"
    assert payload["instances"] == [{"image_bytes": {"b64": "iVBORw=="}, "class_ids": 2}]
    assert client.rest_payload(b"\xff\xd8\xff")["instances"] == [{"b64": "/9j/"}]
    # A row as TF Serving's REST row format returns it: output name -> this image's value.
    out = exported["out"]
    row = {k.split("/")[1]: v[0] for k, v in out.items() if k.startswith("cam_bytes/")}
    row = {k: v.decode() if isinstance(v, bytes) else v.tolist() for k, v in row.items()}
    image_path = tmp_path / "sent.png"
    image_path.write_bytes(exported["pngs"][0])
    client.draw(str(image_path), row, str(tmp_path / "box.png"), with_cam=True)
    from PIL import Image

    drawn = np.asarray(Image.open(tmp_path / "box.png"))
    assert drawn.shape == (40, 50, 3)
    x0, y0, x1, y1 = row["boxes_in_image"]
    assert drawn[y1, (x0 + x1) // 2].tolist() == [0, 255, 0]  # the bottom edge of the box
