import ast
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


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _package_imports():
    """{module: the keras_dgdm modules it imports, at the top or inside a function}."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(REPO, "keras_dgdm")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    graph = {}
    for module, path in modules.items():
        package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([node.module] if node.module else []))
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                               for a in node.names)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def test_the_package_has_no_import_cycle_and_evaluation_imports_nothing_of_training():
    graph = _package_imports()
    assert graph["keras_dgdm.train.flags"] >= {"keras_dgdm.train.config",
                                                "keras_dgdm.data.options"}  # the graph is read
    done, path = set(), []

    def visit(module):
        assert module not in path, " -> ".join(path[path.index(module):] + [module])
        if module not in done:
            path.append(module)
            for target in sorted(graph[module]):
                visit(target)
            path.pop()
            done.add(module)

    for module in sorted(graph):
        visit(module)
    reached, todo = set(), ["keras_dgdm.evaluation", "keras_dgdm.metrics"]
    while todo:  # what evaluation imports, directly or not
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    assert not {m for m in reached if m.startswith(("keras_dgdm.train", "keras_dgdm.training"))}
    for folder, _, files in os.walk(os.path.join(REPO, "keras_dgdm")):
        for name in files:
            if name.endswith(".py"):
                tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
                assert not any(
                    isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "training"
                    or isinstance(n, ast.Import) and any(a.name.split(".")[0] == "training"
                                                         for a in n.names)
                    for n in ast.walk(tree)), name


def test_one_file_calls_model_fit():
    callers = []
    for top in ("keras_dgdm", "training"):
        for folder, _, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    if ".fit(" in open(path, encoding="utf-8").read():
                        callers.append(os.path.relpath(path, REPO))
    assert callers == [os.path.join("keras_dgdm", "train", "loop.py")]
