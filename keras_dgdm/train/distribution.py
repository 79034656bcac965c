"""Devices, distribution strategy and precision of a training run, with the engines Keras and
TensorFlow have: ``tf.distribute.MirroredStrategy`` on one host (TensorFlow),
``keras.distribution.DataParallel`` over the devices of every process (JAX; several processes:
``keras_dgdm.train.processes``), and keras' global dtype policy.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import keras

from keras_dgdm.layers.registry import unknown_choice
from keras_dgdm.train import processes
from keras_dgdm.train.config import STRATEGIES


def configure_cpu_devices(devices) -> None:
    """Splits the CPU into logical devices when ``devices`` names more than ``/cpu:0``.

    ``--devices /cpu:0,/cpu:1`` runs MirroredStrategy with two replicas on one CPU (how the
    tests and a laptop check multi-replica code). Must run before TensorFlow initialises its
    devices (first op); a no-op on other backends or when nothing beyond /cpu:0 is named.
    """
    if not devices or keras.backend.backend() != "tensorflow":
        return
    indices = []
    for d in devices:
        d = d.strip().lower().replace("device:", "")
        if "/cpu:" in d:
            indices.append(int(d.rsplit(":", 1)[1]))
    if not indices or max(indices) == 0:
        return
    import tensorflow as tf  # the TensorFlow backend's (deferred: a JAX-only machine has none)

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * (max(indices) + 1)
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have <= max(indices):
            raise RuntimeError(
                f"devices {devices} need {max(indices) + 1} logical CPUs, but TensorFlow is "
                f"already initialised with {have}; configure devices before any TF op."
            ) from None


def make_strategy(name: str = "auto", devices=None):
    """Returns a distribution strategy scope object for ``name`` on the current backend.

    TensorFlow: "auto" = ``tf.distribute.MirroredStrategy`` over all visible GPUs when there are
    several, else the default strategy; "mirrored" = MirroredStrategy over ``devices`` (all GPUs
    when None); "none" = the default strategy; "multiworker" is refused (Keras 3's fit under
    MultiWorkerMirroredStrategy is broken upstream; the message names the JAX route). JAX:
    "auto"/"data_parallel"/"mirrored"/"multiworker" set ``keras.distribution.DataParallel`` over
    the JAX devices of every process (``keras_dgdm.train.processes``) when there are several.

    Returns:
        an object with ``.scope()`` and ``.num_replicas_in_sync``.
    """
    if name not in STRATEGIES:
        raise unknown_choice("strategy", name, STRATEGIES)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # the TensorFlow backend's (deferred: a JAX-only machine has none)

        if name == "multiworker":
            raise ValueError("--strategy multiworker: " + processes.MULTIWORKER_ON_TENSORFLOW)
        if name == "mirrored":
            return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
        if name == "data_parallel":
            raise ValueError("strategy 'data_parallel' is the JAX backend's; on TensorFlow use "
                             "'mirrored' or 'multiworker'.")
        if name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if backend == "jax" and name != "none":
        devs = keras.distribution.list_devices()  # every process's devices
        if len(devs) > 1 or name != "auto":
            # Several processes: each feeds its own shard (processes.shard), not Keras' split.
            keras.distribution.set_distribution(keras.distribution.DataParallel(
                devices=devs, auto_shard_dataset=processes.process_count() == 1))
            return _NoScope(len(devs))
    elif backend != "tensorflow" and name == "multiworker":
        raise ValueError(f"strategy 'multiworker' needs the JAX backend (now {backend!r}).")
    return _NoScope(1)


class _NoScope:
    def __init__(self, replicas):
        self.num_replicas_in_sync = replicas

    def scope(self):
        return contextlib.nullcontext()


def set_precision(mixed_precision: Optional[str]) -> str:
    """Sets keras' global dtype policy: None/"none" -> float32; "auto" -> mixed_float16 on GPU,
    mixed_bfloat16 on CPU/TPU; or a policy name. Returns the policy name."""
    if mixed_precision in (None, "none", "float32", False):
        policy = "float32"
    elif mixed_precision == "auto":
        policy = "mixed_float16" if _has_gpu() else "mixed_bfloat16"
    else:
        policy = mixed_precision
    try:
        keras.mixed_precision.set_global_policy(policy)
    except ValueError as e:
        raise ValueError(f"mixed_precision {mixed_precision!r} is not a keras dtype policy "
                         "(none, auto, mixed_float16, mixed_bfloat16).") from e
    return policy


def _has_gpu():
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # noqa: BLE001 - device listing is best effort
        return False
    return any("gpu" in str(d).lower() or "cuda" in str(d).lower() for d in devices)


__all__ = ["configure_cpu_devices", "make_strategy", "set_precision"]
