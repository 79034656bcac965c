"""Multi-process training (keras_dgdm.train.processes): 2 fit.py processes on localhost (JAX, CPU
devices) end with identical weights, each having read its own half of the data; TensorFlow's
MultiWorkerMirroredStrategy is refused at once with the JAX route; devices and distribution are
set up before anything starts the backend."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_dgdm.train import processes as distributed
from keras_dgdm.data import load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _labels(data):
    return [int(ex["label"]) for ex in data.examples.as_numpy_iterator()]


@pytest.mark.parametrize("equal", [False, True])
def test_each_process_reads_its_own_shard(monkeypatch, equal):
    data = load("synthetic", "train", num_images=9, image_size=24)
    everything = _labels(data)
    monkeypatch.setattr(distributed, "process_count", lambda: 2)
    shards = []
    for index in (0, 1):
        monkeypatch.setattr(distributed, "process_index", lambda index=index: index)
        shards.append(distributed.shard(data, equal=equal))
    if equal:  # both step through the same number of examples
        assert [s.num_examples for s in shards] == [4, 4]
        assert _labels(shards[0]) == everything[0:8:2] and _labels(shards[1]) == everything[1:8:2]
    else:  # disjoint, together the whole split
        assert [s.num_examples for s in shards] == [5, 4]
        assert _labels(shards[0]) == everything[0::2] and _labels(shards[1]) == everything[1::2]


def test_batch_sizes_and_steps_are_shared_out_evenly(monkeypatch):
    monkeypatch.setattr(distributed, "process_count", lambda: 2)
    assert distributed.per_process(8) == 4
    with pytest.raises(ValueError, match=r"--batch-size 7 must be a multiple of the number of "
                                         r"processes \(2\)"):
        distributed.per_process(7)
    # 25 examples, shards of 13 and 12: both take ceil(12 / 4) = 3 steps, never 4 and 3.
    assert distributed.steps_per_epoch(25, 8) == 3


@pytest.mark.parametrize("args, flag", [
    (("127.0.0.1:1234", 1, 0), "--num-processes must be an integer >= 2"),
    (("127.0.0.1:1234", 2, 2), r"--process-id must be an integer in \[0, 2\)"),
    (("localhost", 2, 0), "--coordinator must be HOST:PORT"),
])
def test_initialize_arguments_name_the_flag(args, flag):
    with pytest.raises(ValueError, match=flag):
        distributed.initialize(*args)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow refusal")
def test_several_processes_on_tensorflow_name_the_jax_route():
    with pytest.raises(ValueError, match="needs the JAX backend .*KERAS_BACKEND=jax.*#20585"):
        distributed.initialize("127.0.0.1:1234", 2, 0)


def test_multiworker_on_tensorflow_is_refused_before_the_backend_starts(tmp_path):
    """In a fresh interpreter: the refusal comes before TensorFlow builds any layer, and a
    3-replica MirroredStrategy on logical CPUs can still be made by prepare() (the config was
    resolved, building a layer and starting TensorFlow, before the devices were set up)."""
    code = textwrap.dedent(f"""
        from keras_dgdm.train import loop as training
        from keras_dgdm.train import TrainConfig, SetupError
        try:
            training.prepare(TrainConfig(strategy="multiworker", output_dir={str(tmp_path)!r}))
        except SetupError as e:
            print("REFUSED", str(e))
        ctx = training.prepare(TrainConfig(
            strategy="mirrored", devices=["/cpu:0", "/cpu:1", "/cpu:2"], batch_size=6,
            data_options={{"num_images": 12}}, image_size=32, epochs=1, evaluate=False,
            output_dir={str(tmp_path)!r}))
        print("REPLICAS", ctx["strategy"].num_replicas_in_sync)
    """)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert lines["REFUSED"].startswith("--strategy multiworker: Keras 3's model.fit under "
                                       "TensorFlow's MultiWorkerMirroredStrategy is broken")
    assert "KERAS_BACKEND=jax python training/fit.py --coordinator HOST:PORT" in lines["REFUSED"]
    assert lines["REPLICAS"] == "3"


def _launch(tmp_path, port, index, extra=()):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLA_")}
    env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    argv = [sys.executable, os.path.join(REPO, "training", "fit.py"), "--dataset", "synthetic",
            "--data-option", "num_images=24", "--image-size", "32", "--batch-size", "8",
            "--epochs", "1", "--steps-per-epoch", "3", "--no-eval", "--no-export",
            "--output-dir", "runs", "--coordinator", f"127.0.0.1:{port}", "--num-processes",
            "2", "--process-id", str(index), *extra]
    return subprocess.Popen(argv, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_two_processes_train_to_identical_weights_on_split_data(tmp_path):
    port = _free_port()
    procs = [_launch(tmp_path, port, i) for i in (0, 1)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=900)[0])
    finally:
        for proc in procs:  # a process left waiting for its peer is ended with its children
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]
    chief = tmp_path / "runs" / "synthetic-small_vgg-dgdm-32px-seed0"
    worker = chief / "workers" / "process-1"
    configs = [json.loads((run / "config.json").read_text()) for run in (chief, worker)]
    # One global batch of 8 = 4 images from each process, over both processes' devices.
    for index, config in enumerate(configs):
        assert config["backend"] == "jax" and config["num_replicas"] == 2
        assert config["num_processes"] == 2 and config["process_id"] == index
        assert config["data_shard"] == {"train_examples": f"{index}::2",
                                        "num_train_examples": 12, "batch_size": 4}
        assert config["steps_per_epoch"] == 3
    for run in (chief, worker):
        assert len((run / "log.csv").read_text().strip().splitlines()) == 2  # header + epoch
    # The progress line is the chief's alone.
    assert "3/3 - " in outputs[0] and "3/3 - " not in outputs[1]
    models = [keras.saving.load_model(run / "model.keras", compile=False)
              for run in (chief, worker)]
    for a, b in zip(models[0].weights, models[1].weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # ... and trained: BatchNorm's moving means start at zero and moved with the batches.
    moving = [w.numpy() for w in models[0].weights if w.path.endswith("moving_mean")]
    assert len(moving) >= 4 and all(np.abs(m).max() > 0 for m in moving)
