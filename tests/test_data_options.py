"""keras_dgdm.data.options: KEY=VALUE text -> a loader's keyword argument."""
import argparse

import pytest

from keras_dgdm.data.options import key_value, parse_value


def test_value_parsers():
    assert [parse_value(t) for t in ("none", "3", "0.5", "False", "adaptive")] == [
        None, 3, 0.5, False, "adaptive"]
    assert key_value("num_images = 24") == ("num_images", 24)
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        key_value("num_images")
