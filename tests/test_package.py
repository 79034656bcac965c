import os
import subprocess
import sys

import pytest

import keras_dgdm


@pytest.mark.parametrize("name", [n for n in keras_dgdm.__all__ if n != "data"])
def test_every_public_name_resolves(name):
    assert getattr(keras_dgdm, name) is not None


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        keras_dgdm.no_such_thing


def test_package_needs_no_tensorflow_outside_the_tensorflow_backend():
    # The GPU machine has JAX but no TensorFlow: the package, the evaluator and the synthetic
    # benchmark must import there. Keras' numpy backend stands in for "not TensorFlow" here.
    code = (
        "import sys, keras_dgdm, keras_dgdm.boxes, keras_dgdm.metrics,"
        " keras_dgdm.data.synthetic, keras_dgdm.models;"
        "print(any(m.split('.')[0] == 'tensorflow' for m in sys.modules))"
    )
    env = dict(os.environ, KERAS_BACKEND="numpy")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split()[-1] == "False"


def test_import_keras_dgdm_is_enough_to_load_a_saved_model(tmp_path):
    import keras
    import numpy as np

    from keras_dgdm.train import ScaledSGD

    inputs = keras.Input((8, 8, 3))
    x = keras_dgdm.BackbonePreprocessing("tf")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras_dgdm.DGDM(seed=1)(x)
    x = keras_dgdm.ADL()(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(ScaledSGD(learning_rate=0.1), "mse")
    model.fit(np.ones((2, 8, 8, 3)), np.ones((2, 2)), verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    code = (
        "import keras, keras_dgdm;"
        f"m = keras.models.load_model({path!r});"
        "print(type(m.optimizer).__name__, [type(l).__name__ for l in m.layers][1:5])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == (
        "ScaledSGD ['BackbonePreprocessing', 'Conv2D', 'DGDM', 'ADL']"
    )


@pytest.mark.parametrize("module", ["sagd", "cagd", "dgdm", "adl", "preprocessing"])
def test_layer_docstring_examples_run(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"keras_dgdm.layers.{module}")
    result = doctest.testmod(mod, verbose=False)
    assert result.attempted > 0 and result.failed == 0
