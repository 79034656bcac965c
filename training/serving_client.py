#!/usr/bin/env python
"""Ask a TF Serving model exported by keras_dgdm "what is in this image, and where".

Sends an image file (JPEG / PNG, any size) to the ``cam_bytes`` signature (or
``cam_for_class_bytes`` with ``--class-id``) over REST (default) or gRPC (``--grpc``), prints the
class, score and box, and draws the box (and the CAM, with ``--cam``) on the image into a PNG.

    python training/serving_client.py bird.jpg --model cub_dgdm --output bird_box.png
    python training/serving_client.py bird.jpg --model cub_dgdm --grpc localhost:8500
    python training/serving_client.py bird.jpg --model cub_dgdm --class-id 12 --cam

REST needs only the standard library; gRPC needs ``pip install tensorflow-serving-api``.
Drawing needs Pillow. See docs/serving.md for starting the server.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

import cli_support  # training/ (this script's folder): standard library only


class ServingError(RuntimeError):
    """TF Serving cannot be reached or refused the request (the message says which and why)."""


def rest_payload(image_bytes, class_id=None):
    """The JSON body of a REST predict request (row format, one instance).

    Args:
        image_bytes: the encoded image file's bytes.
        class_id: optional int: ask ``cam_for_class_bytes`` for this class's CAM and box.

    Returns:
        A dict, e.g. ``{"signature_name": "cam_bytes", "instances": [{"b64": "..."}]}``.
    """
    encoded = {"b64": base64.b64encode(image_bytes).decode("ascii")}
    if class_id is None:
        return {"signature_name": "cam_bytes", "instances": [encoded]}
    return {
        "signature_name": "cam_for_class_bytes",
        "instances": [{"image_bytes": encoded, "class_ids": int(class_id)}],
    }


def predict_rest(url, image_bytes, class_id=None, timeout=30.0):
    """POSTs to ``{url}:predict`` (url = http://HOST:8501/v1/models/NAME); returns one row dict."""
    body = json.dumps(rest_payload(image_bytes, class_id)).encode("utf-8")
    request = urllib.request.Request(
        url.rstrip("/") + ":predict", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:  # TF Serving puts the graph's message in "error"
        raise ServingError(f"TF Serving refused the request (HTTP {error.code}): "
                           f"{error.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as error:  # refused, unknown host, timeout
        reason = getattr(error, "reason", error)
        raise ServingError(
            f"cannot reach TF Serving at {url} ({reason}). Is the server running, with its REST "
            "port published? See docs/serving.md; --host / --rest-port / --grpc choose where to "
            "send.") from None
    return answer["predictions"][0]


def predict_grpc(target, model_name, image_bytes, class_id=None, timeout=30.0):
    """Calls PredictionService.Predict on ``target`` (HOST:8500); returns one row dict."""
    try:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as error:
        raise ServingError(f"--grpc needs `pip install tensorflow-serving-api` ({error}).") \
            from None
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "cam_bytes" if class_id is None else "cam_for_class_bytes"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image_bytes]))
    if class_id is not None:
        request.inputs["class_ids"].CopyFrom(tf.make_tensor_proto([int(class_id)], tf.int32))
    try:
        response = stub.Predict(request, timeout)
    except grpc.RpcError as error:
        raise ServingError(f"gRPC Predict on {target} failed: {error.code().name}: "
                           f"{error.details()}. Is the server running? See docs/serving.md.") \
            from None
    row = {}
    for key, proto in response.outputs.items():
        value = tf.make_ndarray(proto)[0]
        row[key] = value.decode() if isinstance(value, bytes) else value.tolist()
    return row


def draw(image_path, row, output_path, with_cam=False):
    """Draws ``row["boxes_in_image"]`` (and the CAM) on the image and saves a PNG.

    Args:
        image_path: the image that was sent.
        row: one prediction row of ``cam_bytes`` / ``cam_for_class_bytes``.
        output_path: the PNG to write.
        with_cam: blend the CAM (resized to the image) in red under the box.
    """
    from PIL import Image, ImageDraw

    image = Image.open(image_path).convert("RGB")
    if with_cam:
        cam = _cam_image(row).resize(image.size, Image.BILINEAR)
        red = Image.new("RGB", image.size, (255, 0, 0))
        image = Image.composite(red, image, cam.point(lambda v: v // 2))
    x0, y0, x1, y1 = row["boxes_in_image"]
    pen = ImageDraw.Draw(image)
    pen.rectangle((x0, y0, x1, y1), outline=(0, 255, 0), width=max(1, image.width // 150))
    pen.text((x0 + 3, y0 + 2), f"{row['class_names']} {row['scores']:.2f}", fill=(0, 255, 0))
    image.save(output_path, format="PNG")


def _cam_image(row):
    from PIL import Image

    cams = row["cams"]
    height, width = len(cams), len(cams[0])
    data = bytes(min(255, max(0, int(v * 255))) for line in cams for v in line)
    return Image.frombytes("L", (width, height), data)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("image", help="JPEG / PNG file to send")
    p.add_argument("--model", required=True, help="model name in TF Serving (--model_name)")
    p.add_argument("--host", default="localhost")
    p.add_argument("--rest-port", type=int, default=8501)
    p.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC at HOST:PORT (e.g. localhost:8500)")
    p.add_argument("--class-id", type=int, help="CAM / box of this class (GT-known) instead of "
                                                "the predicted one")
    p.add_argument("--output", default=None, help="PNG to write (default: IMAGE_box.png)")
    p.add_argument("--cam", action="store_true", help="also draw the CAM")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    p.add_argument("--debug", action="store_true", help=cli_support.DEBUG_HELP)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    debug = cli_support.start(argv, import_tensorflow=bool(args.grpc)) or args.debug

    with cli_support.user_errors("serving_client.py", (ServingError, OSError), debug, status=1):
        with open(args.image, "rb") as f:
            image_bytes = f.read()
        if args.grpc:
            row = predict_grpc(args.grpc, args.model, image_bytes, args.class_id, args.timeout)
        else:
            url = f"http://{args.host}:{args.rest_port}/v1/models/{args.model}"
            row = predict_rest(url, image_bytes, args.class_id, args.timeout)
    output = args.output or args.image.rsplit(".", 1)[0] + "_box.png"
    print(json.dumps({k: row[k] for k in ("class_names", "classes", "scores", "boxes_in_image",
                                          "image_sizes")}))
    draw(args.image, row, output, with_cam=args.cam)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
