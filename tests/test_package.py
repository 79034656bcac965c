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


def test_numpy_only_modules_do_not_import_keras_or_tensorflow():
    # The evaluator and the synthetic benchmark must work where TensorFlow is absent (the GPU
    # machine runs JAX only) and stay cheap to import.
    code = (
        "import sys, keras_dgdm.localization, keras_dgdm.metrics, keras_dgdm.data.synthetic;"
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
