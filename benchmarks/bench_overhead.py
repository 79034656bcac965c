"""What DGDM costs in training: step time of method="dgdm" against method="cam", as a ratio.

Builds ``build_wsol_model(backbone, method="cam")`` and ``method="dgdm"`` (same backbone, input
size, batch, precision, ``weights=None``), compiles one training step for each (forward,
sparse softmax cross-entropy, backward, SGD with momentum 0.9), warms both up (compilation
excluded), then times them in *interleaved* repetitions -- cam, dgdm, dgdm, cam, cam, dgdm, ...
-- so that drift of a shared machine hits both alike. Each repetition runs ``--steps`` steps on
one fixed random batch that already lives on the device and syncs once at its end (no host
sync per step). Prints one figure per line:

    overhead <backbone> <H>x<W> b<batch> <backend> <precision> xla=<on|off>: dgdm/cam = 1.012
        (median of 15 paired reps; IQR 1.004-1.020; range 0.990-1.041)
    step time ... cam: 123.4 ms (IQR ...) | dgdm: 124.9 ms (IQR ...)

The ratio is computed per repetition pair (dgdm time / cam time of the same pair) and the
median and spread are over pairs.

Backends: ``KERAS_BACKEND=tensorflow`` (tf.function, ``jit_compile`` per ``--xla``) or
``KERAS_BACKEND=jax`` (jax.jit of ``model.stateless_call`` + ``optimizer.stateless_apply``,
buffers donated; always XLA). The JAX path never imports TensorFlow (``--forbid-tensorflow``
makes any attempt fail, to check that on a machine that has it).

    # the CPU figures of BENCHMARKS.md (2-core shared CPU)
    KERAS_BACKEND=tensorflow python benchmarks/bench_overhead.py --backbone vgg16 --size 64 --batch 8
    KERAS_BACKEND=tensorflow python benchmarks/bench_overhead.py --backbone small_vgg --size 64 --batch 32
    # the GPU figure (H100, see run_gpu.sh)
    KERAS_BACKEND=jax python benchmarks/bench_overhead.py --backbone vgg16 --size 224 --batch 64 \
        --precision bf16
    # smoke test (seconds)
    python benchmarks/bench_overhead.py --smoke
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}


def forbid_tensorflow():
    """Makes ``import tensorflow`` raise ImportError (as on a machine without TensorFlow)."""
    import importlib.abc

    class _Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"{name} is blocked by --forbid-tensorflow")
            return None

    if any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules):
        raise RuntimeError("--forbid-tensorflow: TensorFlow was imported before the check.")
    sys.meta_path.insert(0, _Blocker())


def build_model(backbone, method, size, num_classes, precision, seed=0):
    """``build_wsol_model(backbone, num_classes, method, weights=None)`` under ``precision``.

    Args:
        backbone: registered backbone name.
        method: ``"cam"`` or ``"dgdm"`` (any method of ``keras_dgdm.models.METHODS``).
        size: input height = width.
        num_classes: classifier width.
        precision: ``"fp32"`` or ``"bf16"`` (``keras.mixed_precision`` policy
            ``"mixed_bfloat16"``: bf16 compute, float32 variables; the classifier stays float32).
        seed: seed of the inserted layers and of the weight initialisation.

    Returns:
        The built ``keras.Model``.
    """
    import keras

    from keras_dgdm.models import build_wsol_model

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}; got {precision!r}.")
    keras.utils.set_random_seed(seed)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])
    try:
        return build_wsol_model(
            backbone, num_classes, method=method, weights=None,
            input_shape=(size, size, 3), seed=seed,
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)


class Trainer:
    """A compiled training step of one model on one fixed batch kept on the device.

    ``run(steps)`` runs ``steps`` training steps back to back (asynchronously where the
    backend allows) and syncs once at the end by fetching the last loss. Variables are
    updated as in real training (SGD, momentum 0.9, lr 0.01); the batch never changes.

    Args:
        model: a ``keras.Model`` taking ``images`` and returning logits.
        images: numpy float32 ``(batch, H, W, 3)``.
        labels: numpy int32 ``(batch,)``.
        xla: TensorFlow backend only: ``tf.function(jit_compile=xla)`` (JAX always uses XLA).

    Example:
        >>> trainer = Trainer(model, images, labels)
        >>> trainer.run(3)  # warm-up / compile
        >>> t = time.perf_counter(); trainer.run(10); (time.perf_counter() - t) / 10
    """

    def __init__(self, model, images, labels, xla=True):
        import keras

        self.backend = keras.backend.backend()
        self.model = model
        self.optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
        self.optimizer.build(model.trainable_variables)
        if self.backend == "jax":
            self._init_jax(images, labels)
        elif self.backend == "tensorflow":
            self._init_tf(images, labels, xla)
        else:
            raise ValueError(
                f"KERAS_BACKEND must be 'jax' or 'tensorflow' for these benchmarks; got "
                f"{self.backend!r}."
            )

    @staticmethod
    def _loss(labels, logits):
        import keras

        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        )

    # ---- JAX: stateless call + value_and_grad + stateless apply, one jit, donated buffers ----
    def _init_jax(self, images, labels):
        import jax

        model, optimizer = self.model, self.optimizer
        self.images = jax.device_put(images)
        self.labels = jax.device_put(labels)
        self.state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
        )

        def loss_fn(trainable, non_trainable, x, y):
            logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            return self._loss(y, logits), non_trainable

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def step(state, x, y):
            trainable, non_trainable, opt_vars = state
            (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            return (trainable, non_trainable, opt_vars), loss

        self._step = jax.jit(step, donate_argnums=(0,))

    # ---- TensorFlow: tf.function (XLA per flag), GradientTape, optimizer.apply ----
    def _init_tf(self, images, labels, xla):
        import tensorflow as tf

        model, optimizer = self.model, self.optimizer
        self.images = tf.constant(images)
        self.labels = tf.constant(labels)

        @tf.function(jit_compile=bool(xla))
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = self._loss(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        self._step = step

    def run(self, steps):
        """Runs ``steps`` training steps and returns the last loss as a Python float."""
        loss = None
        if self.backend == "jax":
            for _ in range(steps):
                self.state, loss = self._step(self.state, self.images, self.labels)
            return float(loss.block_until_ready())
        for _ in range(steps):
            loss = self._step(self.images, self.labels)
        return float(loss.numpy())


def quartiles(values):
    """(25th percentile, median, 75th percentile) of a list of numbers."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(q1), float(med), float(q3)


def interleaved_times(trainers, reps, steps):
    """Seconds per step of each trainer, measured in interleaved repetitions.

    Repetition ``r`` runs the trainers in the given order when ``r`` is even and in reverse
    order when odd (ABBA), so neither model always runs right after the other.

    Args:
        trainers: dict name -> object with ``run(steps)``.
        reps: number of repetitions (each trainer is timed once per repetition).
        steps: training steps per timed repetition.

    Returns:
        ``(wall, process)``: two dicts name -> list of ``reps`` seconds-per-step values, in
        repetition order; ``wall`` from ``time.perf_counter``, ``process`` from
        ``time.process_time`` (CPU seconds of all this process's threads: on an oversubscribed
        shared CPU it counts only the work done, not the time spent waiting for a core).
    """
    names = list(trainers)
    wall = {name: [] for name in names}
    process = {name: [] for name in names}
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            trainers[name].run(steps)
            wall[name].append((time.perf_counter() - start) / steps)
            process[name].append((time.process_time() - start_cpu) / steps)
    return wall, process


def compare(backbone, size, batch, precision="fp32", methods=("cam", "dgdm"), num_classes=200,
            reps=15, steps=5, warmup=3, xla=True, seed=0):
    """Builds, warms up and times the methods' models on one backbone; returns the timings.

    Args:
        backbone, size, batch, precision, num_classes, seed: the models and the batch.
        methods: method names; the first is the baseline of the ratios.
        reps, steps: interleaved repetitions and steps per repetition.
        warmup: untimed steps per model (the first one compiles).
        xla: TensorFlow only, ``jit_compile``.

    Returns:
        dict with ``times`` (name -> list of wall seconds per step), ``ratios`` (name ->
        per-pair wall-time ratios against ``methods[0]``), ``cpu_times`` / ``cpu_ratios`` (the
        same in process CPU time), ``models`` (name -> keras.Model), ``compile_s``
        (name -> seconds of the first warm-up call) and ``loss`` (name -> last loss).
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, (batch,)).astype("int32")
    trainers, models, compile_s, loss = {}, {}, {}, {}
    for method in methods:
        models[method] = build_model(backbone, method, size, num_classes, precision, seed)
        trainers[method] = Trainer(models[method], images, labels, xla=xla)
        start = time.perf_counter()
        trainers[method].run(1)
        compile_s[method] = time.perf_counter() - start
        if warmup > 1:
            loss[method] = trainers[method].run(warmup - 1)
    times, cpu_times = interleaved_times(trainers, reps, steps)
    for method in methods:
        loss[method] = trainers[method].run(1)
        if not np.isfinite(loss[method]):
            raise RuntimeError(f"{method}: the training loss became {loss[method]}.")
    base = methods[0]
    ratios = {m: [t / b for t, b in zip(times[m], times[base])] for m in methods[1:]}
    cpu_ratios = {
        m: [t / b for t, b in zip(cpu_times[m], cpu_times[base])] for m in methods[1:]
    }
    return {"times": times, "ratios": ratios, "cpu_times": cpu_times, "cpu_ratios": cpu_ratios,
            "models": models, "compile_s": compile_s, "loss": loss}


def describe(backbone, size, batch, precision, xla):
    import keras

    backend = keras.backend.backend()
    xla_on = "on" if (xla or backend == "jax") else "off"
    return f"{backbone} {size}x{size} b{batch} {backend} {precision} xla={xla_on}"


def report(result, label, reps, cpu_time=False):
    """Prints the ratio line(s) and the step-time line of a ``compare`` result.

    With ``cpu_time``, also the same figures in process CPU time (the steadier clock on a
    shared, oversubscribed CPU; meaningless for GPU runs).
    """
    clocks = [("", result["ratios"], result["times"])]
    if cpu_time:
        clocks.append((" [process CPU time]", result["cpu_ratios"], result["cpu_times"]))
    for suffix, all_ratios, all_times in clocks:
        methods = list(all_times)
        base = methods[0]
        for method, ratios in all_ratios.items():
            q1, med, q3 = quartiles(ratios)
            print(
                f"overhead {label}{suffix}: {method}/{base} step time = {med:.3f} (median of "
                f"{reps} paired reps; IQR {q1:.3f}-{q3:.3f}; range {min(ratios):.3f}-"
                f"{max(ratios):.3f})",
                flush=True,
            )
        parts = []
        for method in methods:
            q1, med, q3 = quartiles(all_times[method])
            parts.append(f"{method} {med * 1e3:.1f} ms (IQR {q1 * 1e3:.1f}-{q3 * 1e3:.1f})")
        print(f"step time {label}{suffix}: " + " | ".join(parts), flush=True)
    print(
        f"compile {label}: "
        + " | ".join(f"{m} {s:.1f} s" for m, s in result["compile_s"].items()),
        flush=True,
    )


def on_accelerator():
    """Whether the Keras backend computes on a GPU / TPU."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].platform != "cpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    return False


def machine_note():
    """One line: host, CPU count, load average, backend devices."""
    import platform

    import keras

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    devices = ""
    if keras.backend.backend() == "jax":
        import jax

        devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return (f"machine: {platform.node()} {os.cpu_count()} CPUs, load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; backend {keras.backend.backend()}"
            + (f" ({devices})" if devices else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", type=int, default=64, help="input height = width")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    parser.add_argument("--method", default="dgdm", help="method compared against 'cam'")
    parser.add_argument("--num-classes", type=int, default=200)
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repetition")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    parser.add_argument("--xla", choices=("on", "off"), default="on",
                        help="TensorFlow backend: tf.function(jit_compile=...)")
    parser.add_argument("--cpu-time", choices=("auto", "on", "off"), default="auto",
                        help="also report process CPU time (auto: when running on the CPU)")
    parser.add_argument("--forbid-tensorflow", action="store_true",
                        help="fail if anything imports TensorFlow (JAX path check)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny settings (small_vgg 32x32 b4, 2 reps of 1 step)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.backbone, args.size, args.batch, args.num_classes = "small_vgg", 32, 4, 10
        args.reps, args.steps, args.warmup = 2, 1, 1
    if args.forbid_tensorflow:
        forbid_tensorflow()

    print(machine_note(), flush=True)
    xla = args.xla == "on"
    result = compare(
        args.backbone, args.size, args.batch, args.precision, ("cam", args.method),
        args.num_classes, args.reps, args.steps, args.warmup, xla,
    )
    label = describe(args.backbone, args.size, args.batch, args.precision, xla)
    cpu_time = args.cpu_time == "on" or (args.cpu_time == "auto" and not on_accelerator())
    report(result, label, args.reps, cpu_time=cpu_time)
    if args.forbid_tensorflow:
        assert not any(m == "tensorflow" for m in sys.modules), "TensorFlow was imported"


if __name__ == "__main__":
    main()
