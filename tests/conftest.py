import importlib.util
import os
import socket
import sys

import pytest

# The suite runs on the TensorFlow backend unless the caller chose another one.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    # Two logical CPU devices, so MirroredStrategy tests can run 2 replicas on one CPU. This has
    # to happen before TensorFlow initialises its devices, hence here and not in a fixture.
    _cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:  # devices already initialised by an earlier import
        pass


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The scripts of training/ import their sibling cli_support, as Python finds it next to a
# script it runs; the tests load them as modules, so the folder goes on the path here.
sys.path.insert(0, os.path.join(REPO, "training"))
# The subprocesses the tests start (the scripts, "python -c") import this checkout's package,
# not another one an editable install points at.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

_LOCAL = ("localhost", "127.0.0.1", "::1", "", None)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never touch the network: name lookups and connections beyond localhost fail, as
    they do on a machine without network."""
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL:
            raise socket.gaierror(socket.EAI_NONAME, f"no network in the tests ({host})")
        return lookup(host, *args, **kwargs)

    def guarded_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in _LOCAL:
            raise OSError(f"no network in the tests ({address[0]})")
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture
def training_script():
    """``training_script("fit")``: a command-line script of training/ loaded as a module (its
    ``main(argv)`` then runs in this process, without a new TensorFlow start-up)."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "training")

    def load(name):
        spec = importlib.util.spec_from_file_location(f"_script_{name}",
                                                      os.path.join(root, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
