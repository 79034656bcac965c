"""A loader's keyword arguments as a command line gives them: ``KEY=VALUE`` text.

``--data-option num_images=24`` (fit.py and evaluate.py) and the method hyperparameter flags
(``--top-k none``) read their values with ``parse_value``.
"""
from __future__ import annotations

import argparse


def parse_value(text: str):
    """'none' -> None, '3' -> 3, '0.5' -> 0.5, 'true'/'false' -> bool, otherwise the string.

    Example:
        >>> [parse_value(t) for t in ("none", "3", "0.5", "True", "adaptive")]
        [None, 3, 0.5, True, 'adaptive']
    """
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def key_value(text: str) -> tuple:
    """``"KEY=VALUE"`` -> ``(KEY, parse_value(VALUE))`` (the argparse type of ``--data-option``).

    Example:
        >>> key_value("num_images = 24")
        ('num_images', 24)
    """
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), parse_value(value)


__all__ = ["parse_value", "key_value"]
