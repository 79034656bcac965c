"""CPU inference cost of the SavedModel's ``cam`` signature against ``serving_default``.

Exports ``build_wsol_model(backbone, method="dgdm", weights=None)`` with
``keras_dgdm.export.export_saved_model`` to a temporary directory, loads it back with
``tf.saved_model.load`` (as a server would) and times the two signatures on one fixed random
batch in interleaved repetitions (ABBA order, warm-up excluded). ``serving_default`` is the
classifier (probabilities + top-k); ``cam`` is the same forward pass plus the CAM of the
predicted class (class scores at every position, bicubic resize to the input size, min-max
normalisation) and its box (``keras_dgdm.boxes.graph.boxes_from_cams``: quantisation,
threshold, hole filling, connected components, contour areas). Prints one figure per line:

    serving small_vgg 64x64 b1: cam/serving_default = 1.08 (median of 20 paired reps; IQR ...)
    latency small_vgg 64x64 b1: serving_default 2.1 ms (IQR ...) | cam 2.3 ms (IQR ...)

``--profile`` also times the pieces of ``cam`` on their own (tf.function'd, on the CAM
model's real outputs): the forward pass with the CAMs (``build_cam_model``), and
``boxes_from_cams`` alone.

    python benchmarks/bench_serving.py                     # small_vgg 64 + vgg16 224, b1 + b32
    python benchmarks/bench_serving.py --smoke             # seconds
    python benchmarks/bench_serving.py --configs small_vgg:64 --batches 1,32 --profile
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from bench_overhead import machine_note, quartiles  # noqa: E402  (this script's folder)


def interleaved_calls(functions, reps, calls):
    """Seconds per call of each zero-argument function, in ABBA-interleaved repetitions.

    Args:
        functions: dict name -> callable returning something with ``.numpy()`` values (a dict
            of tensors); each call's outputs are fetched, so the time includes the whole graph.
        reps: repetitions; calls: calls per repetition.

    Returns:
        ``(wall, process)``: dicts name -> list of ``reps`` seconds-per-call values, from
        ``time.perf_counter`` and from ``time.process_time`` (CPU seconds of all threads; the
        steadier clock on a shared, oversubscribed CPU).
    """
    names = list(functions)
    wall = {name: [] for name in names}
    process = {name: [] for name in names}
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                out = functions[name]()
                for value in out.values():
                    value.numpy()
            wall[name].append((time.perf_counter() - start) / calls)
            process[name].append((time.process_time() - start_cpu) / calls)
    return wall, process


def bench_config(backbone, size, batches, reps, calls, warmup, profile, cam_threshold=None):
    """Exports one model (at ``cam_threshold``, default the export's) and prints the figures
    for each batch size."""
    import tensorflow as tf

    from keras_dgdm.export import export_saved_model
    from keras_dgdm.metrics import DEFAULT_CAM_THRESHOLD
    from keras_dgdm.models import build_wsol_model

    cam_threshold = DEFAULT_CAM_THRESHOLD if cam_threshold is None else cam_threshold

    model = build_wsol_model(backbone, 200, method="dgdm", weights=None,
                             input_shape=(size, size, 3), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_saved_model(model, os.path.join(tmp, "model"), version=1,
                                  cam_threshold=cam_threshold)
        export_s = time.perf_counter() - start
        loaded = tf.saved_model.load(path)
        print(f"export {backbone} {size}x{size}: {export_s:.1f} s", flush=True)
        rng = np.random.default_rng(0)
        for batch in batches:
            images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
            functions = {
                "serving_default": lambda: loaded.signatures["serving_default"](images=images),
                "cam": lambda: loaded.signatures["cam"](images=images),
            }
            if profile:
                functions.update(_profile_functions(model, images, cam_threshold))
            for fn in functions.values():
                for _ in range(warmup):
                    fn()
            wall, process = interleaved_calls(functions, reps, calls)
            for suffix, times in (("", wall), (" [process CPU time]", process)):
                label = f"{backbone} {size}x{size} b{batch}{suffix}"
                ratios = [c / s for c, s in zip(times["cam"], times["serving_default"])]
                q1, med, q3 = quartiles(ratios)
                print(f"serving {label}: cam/serving_default = {med:.3f} (median of {reps} "
                      f"paired reps x {calls} calls; IQR {q1:.3f}-{q3:.3f}; range "
                      f"{min(ratios):.3f}-{max(ratios):.3f})", flush=True)
                parts = []
                for name, values in times.items():
                    q1, med, q3 = quartiles(values)
                    parts.append(f"{name} {med * 1e3:.2f} ms (IQR {q1 * 1e3:.2f}-"
                                 f"{q3 * 1e3:.2f})")
                print(f"latency {label}: " + " | ".join(parts), flush=True)


def _profile_functions(model, images, cam_threshold):
    """The pieces of the ``cam`` signature, each in its own tf.function (graph mode)."""
    import tensorflow as tf

    from keras_dgdm.cam import build_cam_model
    from keras_dgdm.boxes.graph import boxes_from_cams

    cam_model = build_cam_model(model)
    threshold = tf.constant(cam_threshold, tf.float64)

    @tf.function
    def logits_only(x):
        return {"logits": model(x, training=False)}

    @tf.function
    def with_cams(x):
        return cam_model(x, training=False)

    @tf.function
    def boxes_only(cams):
        return {"boxes": boxes_from_cams(cams, threshold)}

    cams = with_cams(images)["cams"]
    return {
        "part:model": lambda: logits_only(images),
        "part:model+cams": lambda: with_cams(images),
        "part:boxes": lambda: boxes_only(cams),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="small_vgg:64,vgg16:224",
                        help="comma-separated backbone:size")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--calls", type=int, default=None,
                        help="calls per repetition (default: 10 for inputs <= 64 px, else 1)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="also time the forward pass, the CAMs and the boxes apart")
    parser.add_argument("--smoke", action="store_true",
                        help="small_vgg 32x32, batches 1 and 4, 2 reps, with --profile")
    args = parser.parse_args(argv)
    if args.smoke:
        args.configs, args.batches, args.reps, args.calls, args.warmup = (
            "small_vgg:32", "1,4", 2, 1, 1)
        args.profile = True

    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("bench_serving.py needs KERAS_BACKEND=tensorflow (SavedModel export).")
    print(machine_note(), flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    for config in args.configs.split(","):
        try:
            backbone, size = config.split(":")
            size = int(size)
        except ValueError:
            raise SystemExit(f"--configs: expected backbone:size entries; got {config!r}.")
        calls = args.calls or (10 if size <= 64 else 1)
        bench_config(backbone, size, batches, args.reps, calls, args.warmup, args.profile)


if __name__ == "__main__":
    main()
