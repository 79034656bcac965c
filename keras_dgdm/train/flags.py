"""The training command line, generated from ``TrainConfig``: one flag per field (its help text
from the field's ``metadata["help"]``, its choices from the registries, each recipe's value for
the fields a recipe fills), one per method hyperparameter (from the layer signatures), and
``--config RUN_DIR/config.json`` to rerun a run with every setting it had.

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    config = config_from_flags(parser.parse_args(argv))

Only the flags given on the command line count: they override ``--config``'s values, which
override the field defaults.
"""
from __future__ import annotations

import argparse
import dataclasses

from keras_dgdm.data.options import key_value, parse_value
from keras_dgdm.layers.registry import method_hyperparameters
from keras_dgdm.train.config import TrainConfig
from keras_dgdm.train.recipes import RECIPES
from keras_dgdm.train.run_dir import read_config

#: The help groups, in order, with their titles.
GROUPS = {"data": "data", "model": "model",
          "method": "method hyperparameters (layer defaults when not given)",
          "training": "training", "evaluation": "evaluation", "export": "export", "run": "run"}

_HP_PREFIX = "hp_"


def csv_list(text):
    """``"a, b,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _flag(field):
    return "--" + field.metadata.get("flag", field.name).replace("_", "-")


def _default_note(field):
    """What a flag left out means, for its help: each recipe's value, or the field default."""
    if field.metadata.get("recipe"):
        values = {name: recipe.get(field.name) for name, recipe in RECIPES.items()}
        if field.name == "insert_at":
            named = "; ".join(f"{n} {','.join(v)}" for n, v in values.items() if v)
            return f"recipe: {named}; otherwise the backbone's positions"
        shown = {n: _shown(v) for n, v in values.items()}
        if len(set(shown.values())) == 1:
            return f"recipe: {next(iter(shown.values()))} in every recipe"
        return "recipe: " + ", ".join(f"{n} {v}" for n, v in shown.items())
    default = getattr(TrainConfig(), field.name)
    if default is None or isinstance(default, (dict, list)):
        return ""
    return f"default: {_shown(default)}"


def _shown(value):
    """A value as the help prints it: booleans as on / off (their flags' words)."""
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _add_field(group, field):
    help_text = field.metadata.get("help", "")
    note = _default_note(field)
    kwargs = dict(dest=field.name, default=argparse.SUPPRESS,
                  help=f"{help_text} ({note})" if note else help_text)
    kind = field.metadata.get("kind")
    ftype = str(field.type)
    if "choices" in field.metadata:  # checked by TrainConfig.resolved, the registries' message
        kwargs.update(metavar="{" + ",".join(field.metadata["choices"]()) + "}")
    elif kind == "csv":
        kwargs.update(type=csv_list, metavar="A,B,...")
    elif kind == "key_value":
        kwargs.update(type=key_value, action="append", metavar="KEY=VALUE")
    elif kind == "optional_const":
        kwargs.update(nargs="?", const=field.metadata["const"])
    elif "bool" in ftype:
        kwargs.update(action=argparse.BooleanOptionalAction)
    elif "int" in ftype:
        kwargs.update(type=int)
    elif "float" in ftype:
        kwargs.update(type=float)
    group.add_argument(_flag(field), **kwargs)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--config``, one flag per ``TrainConfig`` field and one per method
    hyperparameter (``--drop-rate`` ... ``--top-k``) to ``parser``, in ``GROUPS``."""
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    groups["run"].add_argument(
        "--config", metavar="RUN/config.json", default=None,
        help="rerun a run: its config.json (or run directory) gives every setting; the flags "
             "given as well override them (e.g. --run-name for a copy)")
    for field in dataclasses.fields(TrainConfig):
        if field.metadata.get("kind") == "method_kwargs":
            groups["method"].description = field.metadata["help"]
            for name, default in method_hyperparameters().items():
                groups["method"].add_argument(
                    "--" + name.replace("_", "-"), dest=_HP_PREFIX + name, type=parse_value,
                    metavar=name.upper(), default=argparse.SUPPRESS,
                    help=f"layer default: {default}")
        else:
            _add_field(groups[field.metadata.get("group", "run")], field)


def config_from_flags(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed flags: the field defaults, then ``--config``'s values, then
    the flags given (recipe fields left ``None`` are resolved by ``TrainConfig.resolved``)."""
    given = vars(args)
    values = read_config(args.config) if given.get("config") else {}
    for field in dataclasses.fields(TrainConfig):
        if field.name not in given:
            continue
        value = given[field.name]
        if field.metadata.get("kind") == "key_value":
            value = {**values.get(field.name, {}), **dict(value)}
        values[field.name] = value
    hparams = {k[len(_HP_PREFIX):]: v for k, v in given.items() if k.startswith(_HP_PREFIX)}
    if hparams:
        values["method_kwargs"] = {**values.get("method_kwargs", {}), **hparams}
    return TrainConfig.from_dict(values)


__all__ = ["GROUPS", "csv_list", "add_config_flags", "config_from_flags"]
