"""Training on several processes or hosts: the JAX backend with ``keras.distribution``.

Keras 3's own multi-host route. Every process runs the same command; ``initialize`` connects
them (``keras.distribution.initialize``, i.e. ``jax.distributed``), ``DataParallel`` spans the
devices of all processes, and each process reads its own shard of the data (``shard``), so a
global batch of B images is B / N images from each of the N processes. The variables are
replicated: every process ends with the same weights.

    # on every host (process 0 also hosts the coordinator at HOST:PORT)
    KERAS_BACKEND=jax python training/fit.py --coordinator HOST:PORT --num-processes 2 \\
        --process-id I ...

TensorFlow's ``MultiWorkerMirroredStrategy`` is not offered: Keras 3's ``model.fit`` under it is
broken upstream (keras-team/keras#20585); ``MULTIWORKER_ON_TENSORFLOW`` says so to the user.
On CPU the processes exchange gradients through gloo (``jax_cpu_collectives_implementation``).
"""
from __future__ import annotations

import dataclasses
import os
import re

import keras

#: Why ``--strategy multiworker`` is refused on TensorFlow, and the route that works.
MULTIWORKER_ON_TENSORFLOW = (
    "Keras 3's model.fit under TensorFlow's MultiWorkerMirroredStrategy is broken upstream "
    "(keras-team/keras#20585). Train on several hosts with the JAX backend instead: on every "
    "host run KERAS_BACKEND=jax python training/fit.py --coordinator HOST:PORT --num-processes N "
    "--process-id I ... (README: several hosts); on one host with several GPUs use --strategy "
    "mirrored."
)


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    """Connects this process to the others of a multi-process run (before any computation).

    Args:
        coordinator: ``HOST:PORT`` where process 0 serves the coordination service (the same on
            every process).
        num_processes: number of processes (>= 2).
        process_id: this process's index in ``[0, num_processes)``; 0 is the chief (it writes
            the run directory, evaluates and exports).

    Raises:
        ValueError: a bad argument (naming the flag), or a backend other than JAX.
    """
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) \
            or num_processes < 2:
        raise ValueError(f"--num-processes must be an integer >= 2; got {num_processes!r}.")
    if isinstance(process_id, bool) or not isinstance(process_id, int) \
            or not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must be an integer in [0, {num_processes}); "
                         f"got {process_id!r}.")
    if not isinstance(coordinator, str) or not re.fullmatch(r"\S+:\d+", coordinator):
        raise ValueError(f"--coordinator must be HOST:PORT (process 0's address); "
                         f"got {coordinator!r}.")
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(f"--num-processes {num_processes} needs the JAX backend (now "
                         f"{backend!r}): KERAS_BACKEND=jax. " + MULTIWORKER_ON_TENSORFLOW)
    import jax  # the JAX backend's (deferred: TensorFlow-only machines need not have it)

    # CPU processes exchange gradients through gloo (GPUs use NCCL without this setting).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        keras.distribution.initialize(coordinator, num_processes, process_id)
    except RuntimeError as error:  # e.g. DEADLINE_EXCEEDED: the others never came
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConnectionError(
            f"process {process_id} of {num_processes} could not join the run at {coordinator} "
            f"({type(error).__name__}: {first}). Start every process with the same "
            "--coordinator and --num-processes, and check that HOST:PORT is reachable from "
            "this host.") from error


def process_count() -> int:
    """Number of processes of this run (1 unless ``initialize`` connected several)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax  # the JAX backend's (deferred: TensorFlow-only machines need not have it)

    return jax.process_count()


def process_index() -> int:
    """This process's index (0 on one process)."""
    if keras.backend.backend() != "jax":
        return 0
    import jax  # the JAX backend's (deferred: TensorFlow-only machines need not have it)

    return jax.process_index()


def per_process(size: int, what: str = "--batch-size") -> int:
    """``size`` (a global batch size) divided among the processes; must divide evenly."""
    n = process_count()
    if size % n:
        raise ValueError(f"{what} {size} must be a multiple of the number of processes ({n}): "
                         "each process feeds the same share of every global batch.")
    return size // n


def shard(data, equal: bool = False):
    """This process's shard of a ``WSOLData``: examples ``process_index()::process_count()``,
    read only by this process. ``equal``: every shard keeps ``num_examples // count`` examples
    (the processes must step together through evaluation batches)."""
    count, index = process_count(), process_index()
    if count == 1:
        return data
    size = len(range(index, data.num_examples, count))
    records = data.records.shard(count, index)
    if equal:
        size = data.num_examples // count
        records = records.take(size)
    return dataclasses.replace(data, records=records, num_examples=size)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Global steps in one pass over ``num_examples`` at global ``batch_size``, the same on
    every process (each shard holds at least ``num_examples // count`` examples)."""
    count = process_count()
    local = per_process(batch_size)
    return -(-(num_examples // count) // local)


def local_model(model, build):
    """After a multi-process fit: a model on this process's devices only, with ``model``'s
    weights, and the processes disconnected (evaluation and export need no collective).

    Args:
        model: the trained model (replicated across processes).
        build: ``build()`` -> an untrained model of the same architecture.
    """
    import jax  # the JAX backend's (deferred: TensorFlow-only machines need not have it)

    weights = model.get_weights()
    jax.distributed.shutdown()
    keras.distribution.set_distribution(None)
    local = build()
    local.set_weights(weights)
    return local


def worker_view(config):
    """A non-chief process's copy of a resolved TrainConfig: its run directory under the
    chief's (``RUN_DIR/workers/process-I``), no evaluation, no export."""
    return dataclasses.replace(
        config, output_dir=os.path.join(config.run_dir, "workers"),
        run_name=f"process-{process_index()}", evaluate=False, export=False)
