"""The backend-agnostic claim, checked in every run of the suite: the layer, model, graph-rewriting
and CAM tests rerun whole under KERAS_BACKEND=jax (jax is in the test extra)."""
import os
import re
import subprocess
import sys

import keras
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND_AGNOSTIC = ("test_layers.py", "test_models.py", "test_rewrite.py", "test_cam.py")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="this run is on the other backend already")
def test_backend_agnostic_tests_pass_on_jax():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-W", "ignore",
         *(os.path.join(HERE, name) for name in BACKEND_AGNOSTIC)],
        env=env, cwd=os.path.dirname(HERE), capture_output=True, text=True, timeout=1800,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed > 100 and "failed" not in summary and "error" not in summary, summary
    # Skips are TensorFlow-only checks (tf.distribute, tf.function), never a missing package.
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert not [r for r in reasons if re.search(r"not installed|No module|could not import", r)]
    assert len(reasons) <= 3, reasons
