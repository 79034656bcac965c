"""PyTorch reference: training throughput of the same architectures in torchvision (eager).

The yardstick for ``bench_gpu_throughput.py`` (run beside it by ``run_gpu.sh``, same machine,
same call). Architectures, matching ``keras_dgdm.backbones`` (no DGDM layers: plain CAM
models, the fastest a PyTorch user would run):

* ``vgg16``: VGG-GAP = torchvision ``vgg16().features`` without pool5, + conv6 (3x3, 1024,
  ReLU), global average pool, Linear(1024, classes) -- 14x14 feature map at 224;
* ``resnet50``: torchvision ``resnet50()`` with a stride-1 last stage (the stride of
  ``layer4[0].conv2`` and of its downsample conv set to 1), global average pool,
  Linear(2048, classes) -- 14x14 feature map at 224.

Each training step: forward, cross-entropy, backward, SGD (momentum 0.9, lr 0.01); eager mode,
``channels_last`` memory format for the model and the batch, ``cudnn.benchmark = True``;
``bf16`` runs the forward and the loss under ``torch.autocast(dtype=torch.bfloat16)`` with
float32 weights; ``fp32`` allows TF32 in cuDNN convs and cuBLAS matmuls (what JAX's default
precision does on the GPU; ``--no-tf32`` turns it off). One fixed random batch on the device,
no host sync per step; each timed repetition runs ``--steps`` steps and then synchronises.
Prints one figure per line:

    torch vgg16 224x224 b64 cuda bf16: 3090 img/s (median of 10 reps x 20 steps; IQR ...);
        97.6 GFLOP/img train; MFU 30.5% of 989 TFLOP/s

FLOPs use the same formula as the Keras side: forward = sum over Conv2d of
``2 * H_out * W_out * C_out * k_h * k_w * C_in / groups`` + sum over Linear of
``2 * in * out`` (read from forward hooks on one forward pass), training = 3 x forward.

    python benchmarks/bench_torch_reference.py                 # GPU (H100)
    python benchmarks/bench_torch_reference.py --smoke         # CPU, seconds
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

H100_BF16_PEAK_TFLOPS = 989.0


def build_model(backbone, num_classes):
    """The torchvision model of ``backbone`` (``"vgg16"`` or ``"resnet50"``), random weights.

    Args:
        backbone: ``"vgg16"`` (VGG-GAP) or ``"resnet50"`` (stride-1 last stage).
        num_classes: classifier width.

    Returns:
        A ``torch.nn.Module`` mapping ``(N, 3, H, W)`` images to ``(N, num_classes)`` logits.

    Example:
        >>> build_model("vgg16", 200)(torch.zeros(1, 3, 224, 224)).shape  # (1, 200)
    """
    import torch.nn as nn
    import torchvision

    if backbone == "vgg16":
        features = torchvision.models.vgg16(weights=None).features
        pool5 = len(features) - 1
        assert isinstance(features[pool5], nn.MaxPool2d)
        return nn.Sequential(
            *list(features.children())[:pool5],
            nn.Conv2d(512, 1024, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, num_classes),
        )
    if backbone == "resnet50":
        model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        model.layer4[0].conv2.stride = (1, 1)
        model.layer4[0].downsample[0].stride = (1, 1)
        return model
    raise ValueError(f"backbone must be 'vgg16' or 'resnet50'; got {backbone!r}.")


def forward_flops(model, size, device):
    """Forward FLOPs per image of ``model`` at ``size x size`` (Conv2d + Linear, 2 per MAC)."""
    import torch
    import torch.nn as nn

    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            _, c_out, h, w = output.shape
            kh, kw = module.kernel_size
            c_in = inputs[0].shape[1]
            total[0] += 2 * h * w * c_out * kh * kw * c_in // module.groups
        elif isinstance(module, nn.Linear):
            total[0] += 2 * module.in_features * module.out_features * (
                inputs[0].numel() // inputs[0].shape[-1]
            )

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size, device=device))
    for h in handles:
        h.remove()
    return total[0]


def time_training(backbone, size, batch, precision, device, num_classes=200, reps=10, steps=20,
                  warmup=5, tf32=True, seed=0):
    """Seconds per training step of ``reps`` repetitions (each ``steps`` steps, then a sync).

    Returns:
        ``(list of seconds per step, forward FLOPs per image, last loss)``.
    """
    import torch

    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    model = build_model(backbone, num_classes).to(device).to(memory_format=torch.channels_last)
    fwd = forward_flops(model, size, device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.uniform(0, 255, (batch, 3, size, size)).astype("float32"))
    images = images.to(device).contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(rng.integers(0, num_classes, (batch,))).to(device)
    autocast_device = "cuda" if device.startswith("cuda") else "cpu"

    def step():
        with torch.autocast(autocast_device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    def sync(loss):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return float(loss.detach())

    for _ in range(warmup):
        loss = step()
    sync(loss)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        last = sync(loss)
        times.append((time.perf_counter() - start) / steps)
    if not np.isfinite(last):
        raise RuntimeError(f"torch {backbone} {precision}: the training loss became {last}.")
    return times, fwd, last


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="vgg16,resnet50")
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=200)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-tf32", action="store_true", help="fp32 without TF32")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_PEAK_TFLOPS)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny CPU settings: 32x32, batch 2, 2 reps of 1 step")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.batch, args.num_classes = 32, 2, 10
        args.reps, args.steps, args.warmup = 2, 1, 1
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else "no GPU"
    load = os.getloadavg()
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; torch {torch.__version__} on {device} ({gpu})",
          flush=True)
    for backbone in args.backbones.split(","):
        for precision in args.precisions.split(","):
            if precision not in ("bf16", "fp32"):
                raise SystemExit(f"--precisions: bf16 or fp32; got {precision!r}.")
            times, fwd, _ = time_training(
                backbone, args.size, args.batch, precision, device, args.num_classes,
                args.reps, args.steps, args.warmup, tf32=not args.no_tf32,
            )
            rates = [args.batch / t for t in times]
            q1, med, q3 = np.percentile(rates, [25, 50, 75])
            mfu = 3 * fwd * med / (args.peak_tflops * 1e12)
            tf32 = "" if precision == "bf16" else (" (no TF32)" if args.no_tf32 else " (TF32)")
            print(
                f"torch {backbone} {args.size}x{args.size} b{args.batch} {device} {precision}"
                f"{tf32}: {med:.1f} img/s (median of {args.reps} reps x {args.steps} steps; "
                f"IQR {q1:.1f}-{q3:.1f}); {3 * fwd / 1e9:.1f} GFLOP/img train; MFU "
                f"{100 * mfu:.1f}% of {args.peak_tflops:g} TFLOP/s",
                flush=True,
            )
            if device.startswith("cuda"):
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
