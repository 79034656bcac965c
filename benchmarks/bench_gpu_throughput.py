"""Training throughput (images/s) and model FLOP utilisation of our WSOL models, Keras side.

For each backbone (default VGG-GAP ``vgg16`` and ``resnet50``, 224x224, batch 64) and each
precision (bf16 = ``keras.mixed_precision`` ``"mixed_bfloat16"``, and fp32), builds the
``method="cam"`` and ``method="dgdm"`` models with ``weights=None`` and times their training
steps in interleaved repetitions (``bench_overhead.compare``: one jit-compiled step, a fixed
random batch already on the device, no host sync per step, one sync per repetition, warm-up
excluded). Prints one figure per line:

    throughput vgg16 224x224 b64 jax bf16 cam: 3338 img/s (median of 10 reps; IQR ...) ...
    throughput vgg16 224x224 b64 jax bf16 dgdm: 3300 img/s ... MFU 33.1% of 989 TFLOP/s
    overhead vgg16 224x224 b64 jax bf16 xla=on: dgdm/cam step time = 1.011 (...)

Model FLOP utilisation (MFU) = training FLOPs per image x images/s / peak FLOP/s, with

    training FLOPs per image = 3 x forward FLOPs per image (backward ~ 2 x forward)
    forward FLOPs per image  = sum over Conv2D layers of 2 * H_out * W_out * C_out * k_h * k_w
                               * C_in / groups
                             + sum over Dense layers of 2 * units * inputs_per_position
                               * positions

counted analytically from the built Keras model's layer shapes (``forward_flops``). Bias
additions, BatchNorm, activations, pooling, the preprocessing and the DGDM layers' elementwise
work are not counted (DGDM adds no FLOPs by this measure: its cost shows only in the time). The
peak is ``--peak-tflops`` (default 989, the H100 SXM dense bf16 figure; for fp32 runs the same
bf16 peak is used, so the fp32 MFU says how far fp32 is from the bf16 roofline).

Run it on the GPU machine with ``KERAS_BACKEND=jax`` (``benchmarks/run_gpu.sh``); it never
imports TensorFlow on that path. The PyTorch reference of the same architectures is
``benchmarks/bench_torch_reference.py``.

    KERAS_BACKEND=jax python benchmarks/bench_gpu_throughput.py                  # H100
    KERAS_BACKEND=jax python benchmarks/bench_gpu_throughput.py --smoke          # CPU, seconds
    KERAS_BACKEND=jax python benchmarks/bench_gpu_throughput.py --flops-only     # just FLOPs
"""
from __future__ import annotations

import argparse
import os
import sys

import bench_overhead  # benchmarks/ (this script's folder)

H100_BF16_PEAK_TFLOPS = 989.0


def _conv_and_dense_calls(model):
    """(layer, input shape, output shape) of every Conv2D / Dense call in ``model``'s graph.

    The shapes are read from the model's own graph nodes, not from ``layer.input`` /
    ``layer.output``: a layer reused from another model (``keras_dgdm.rewrite`` reuses the
    backbone's layers, e.g. ResNet50's stride-1 conv5) reports its *first* call's shapes
    there. Nested models are descended into.
    """
    import keras

    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            layer = node.operation
            if isinstance(layer, keras.Model):
                yield from _conv_and_dense_calls(layer)
            elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                yield layer, node.input_tensors[0].shape, node.output_tensors[0].shape


def _static(shape, layer, what):
    dims = [int(d) for d in shape[1:] if d is not None]
    if len(dims) != len(shape) - 1:
        raise ValueError(
            f"forward_flops needs static {what} shapes; layer {layer.name!r} has {tuple(shape)}."
        )
    return dims


def layer_forward_flops(layer, input_shape, output_shape):
    """Forward FLOPs per example of one Conv2D / Dense call (0 for any other layer).

    Conv2D: ``2 * H_out * W_out * C_out * k_h * k_w * C_in / groups`` (one multiply and one
    add per multiply-accumulate; channels_last or channels_first). Dense:
    ``2 * units * C_in * positions`` where ``positions`` is the product of the input's
    non-batch, non-feature dims (1 for a flat input). Biases are not counted.

    Args:
        layer: a Keras layer.
        input_shape, output_shape: the shapes of the call, batch dim first.

    Returns:
        An int.

    Example:
        >>> # Conv2D(8, 3, padding="same") on a 4x4x2 map: 2 * 4 * 4 * 8 * 3 * 3 * 2 = 4608
    """
    import keras

    if isinstance(layer, keras.layers.Conv2D) and not isinstance(
        layer, (keras.layers.Conv2DTranspose, keras.layers.DepthwiseConv2D)
    ):
        out = _static(output_shape, layer, "output")
        inp = _static(input_shape, layer, "input")
        if layer.data_format == "channels_last":
            h, w, c_out, c_in = out[0], out[1], out[2], inp[2]
        else:
            h, w, c_out, c_in = out[1], out[2], out[0], inp[0]
        kh, kw = layer.kernel_size
        return 2 * h * w * c_out * kh * kw * c_in // layer.groups
    if isinstance(layer, keras.layers.Dense):
        inp = _static(input_shape, layer, "input")
        positions = 1
        for d in inp[:-1]:
            positions *= d
        return 2 * layer.units * inp[-1] * positions
    return 0


def forward_flops(model):
    """Forward FLOPs per example of a functional Keras model (Conv2D + Dense calls).

    Args:
        model: a functional ``keras.Model`` with static shapes (nested models are descended
            into).

    Returns:
        An int (FLOPs for one example; multiply by the batch size for a batch).

    Example:
        >>> forward_flops(build_wsol_model("vgg16", 200, weights=None)) / 1e9  # 32.54 GFLOPs
    """
    return sum(layer_forward_flops(*call) for call in _conv_and_dense_calls(model))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="vgg16,resnet50")
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--methods", default="cam,dgdm", help="first = baseline of the ratio")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=200)
    parser.add_argument("--reps", type=int, default=10, help="interleaved repetitions")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed repetition")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_PEAK_TFLOPS,
                        help="peak FLOP/s for MFU (H100 SXM dense bf16: 989)")
    parser.add_argument("--flops-only", action="store_true",
                        help="print the forward / training FLOPs and exit")
    parser.add_argument("--forbid-tensorflow", action="store_true",
                        help="fail if anything imports TensorFlow (as on the GPU machine)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny CPU settings: small_vgg + vgg16 at 32x32, batch 2, 2 reps")
    args = parser.parse_args(argv)
    if args.smoke:
        args.backbones, args.size, args.batch, args.num_classes = "small_vgg,vgg16", 32, 2, 10
        args.reps, args.steps, args.warmup = 2, 1, 1
    if args.forbid_tensorflow:
        bench_overhead.forbid_tensorflow()

    import keras

    if keras.backend.backend() not in ("jax", "tensorflow"):
        raise SystemExit(f"KERAS_BACKEND must be jax (GPU) or tensorflow; got "
                         f"{keras.backend.backend()!r}.")
    methods = tuple(args.methods.split(","))
    print(bench_overhead.machine_note(), flush=True)
    print("MFU = 3 x forward FLOPs (Conv2D + Dense, 2 per MAC, analytic) x img/s / "
          f"{args.peak_tflops:g} TFLOP/s", flush=True)
    for backbone in args.backbones.split(","):
        if args.flops_only:
            model = bench_overhead.build_model(backbone, "dgdm", args.size, args.num_classes,
                                               "fp32")
            fwd = forward_flops(model)
            print(f"flops {backbone} {args.size}x{args.size}: forward {fwd / 1e9:.2f} GFLOP/img,"
                  f" training {3 * fwd / 1e9:.2f} GFLOP/img", flush=True)
            continue
        for precision in args.precisions.split(","):
            result = bench_overhead.compare(
                backbone, args.size, args.batch, precision, methods, args.num_classes,
                args.reps, args.steps, args.warmup, xla=True,
            )
            label = bench_overhead.describe(backbone, args.size, args.batch, precision, True)
            for method in methods:
                train_flops = 3 * forward_flops(result["models"][method])
                q1, med, q3 = bench_overhead.quartiles(
                    [args.batch / t for t in result["times"][method]]
                )
                mfu = train_flops * med / (args.peak_tflops * 1e12)
                print(
                    f"throughput {label.replace(' xla=on', '')} {method}: {med:.1f} img/s "
                    f"(median of {args.reps} reps x {args.steps} steps; IQR {q1:.1f}-{q3:.1f}); "
                    f"{train_flops / 1e9:.1f} GFLOP/img train; MFU {100 * mfu:.1f}% of "
                    f"{args.peak_tflops:g} TFLOP/s",
                    flush=True,
                )
            bench_overhead.report(result, label, args.reps)
            del result
            keras.backend.clear_session()
    if args.forbid_tensorflow:
        assert "tensorflow" not in sys.modules, "TensorFlow was imported"


if __name__ == "__main__":
    main()
