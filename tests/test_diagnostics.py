"""keras_dgdm.diagnostics.drop_statistics on crafted feature maps (values checked by hand)."""
import keras
import numpy as np
import pytest

from keras_dgdm import ADL, CAGD, DGDM, SAGD, build_wsol_model
from keras_dgdm.diagnostics import drop_statistics, method_layers


def _feature_model(layer, channels=4, size=4):
    """The input IS the feature map the layer sees: Input -> layer -> GAP -> Dense."""
    x = keras.Input((size, size, channels))
    y = keras.layers.GlobalAveragePooling2D()(layer(x))
    return keras.Model(x, keras.layers.Dense(3)(y))


def _crafted():
    """4x4 map: M_self 10 at (1, 1), 1 at (3, 3), 5 elsewhere; channel scales 1, 2, 10, 0."""
    v = np.full((4, 4), 5.0)
    v[1, 1], v[3, 3] = 10.0, 1.0
    return (v[..., None] * np.array([1.0, 2.0, 10.0, 0.0]))[None].astype("float32")


def test_dgdm_crafted_map_block1_and_block3():
    images = _crafted()
    # block 1: the peak (10 > 0.8 * 10 * 1.3...) and the background cell (1 < 0.3 * max)
    m = _feature_model(DGDM(drop_threshold=0.8, background_threshold=0.3, block_size=1,
                            alpha=0.5, beta=3.0, name="d"))
    s = drop_statistics(m, images)["d"]
    assert s["layer"] == "DGDM" and s["map_size"] == [4, 4] and s["block_size"] == 1
    assert s["num_images"] == 1
    assert s["above_drop_threshold"] == pytest.approx(1 / 16)
    assert s["dropped_by_part_blocks"] == pytest.approx(1 / 16)
    assert s["below_background_threshold"] == pytest.approx(1 / 16)
    assert s["background_of_nonzero"] == pytest.approx(1 / 16)  # no zero position here
    assert s["zero_positions"] == 0.0
    assert s["dropped_by_drop_mask"] == pytest.approx(2 / 16)
    # channels: S = (m, 2m, 10m, 0): the live min is m, 3m keeps only 10m; channel 3 is dead
    assert s["channel_candidates"] == pytest.approx(2 / 4)
    assert s["dead_channels"] == pytest.approx(1 / 4)
    assert s["expected_channels_dropped"] == pytest.approx(0.5 * 2 / 4)
    # block 3: rows/cols 0-2 around the peak (9 cells); the background cell (3, 3) is not grown
    m3 = _feature_model(DGDM(drop_threshold=0.8, background_threshold=0.3, block_size=3, name="d"))
    s3 = drop_statistics(m3, images)["d"]
    assert s3["dropped_by_part_blocks"] == pytest.approx(9 / 16)
    assert s3["below_background_threshold"] == pytest.approx(1 / 16)
    assert s3["dropped_by_drop_mask"] == pytest.approx(10 / 16)


def test_background_share_of_the_nonzero_positions():
    # Row 0 is zero in every channel (4 cells): below 0.3 x max like the cell (3, 3), but
    # dropping it changes nothing; of the 12 non-zero positions only (3, 3) is background.
    images = _crafted()
    images[0, 0] = 0.0
    m = _feature_model(SAGD(drop_threshold=0.8, background_threshold=0.3, block_size=1, name="s"))
    s = drop_statistics(m, images)["s"]
    assert s["zero_positions"] == pytest.approx(4 / 16)
    assert s["below_background_threshold"] == pytest.approx(5 / 16)
    assert s["background_of_nonzero"] == pytest.approx(1 / 12)
    assert s["dropped_by_drop_mask"] == pytest.approx(6 / 16)


def test_means_over_images_and_batches():
    # a flat map puts every position above 0.8 x max: the drop mask erases all of it
    flat = np.ones((1, 4, 4, 4), "float32")
    images = np.concatenate([_crafted(), flat])
    m = _feature_model(ADL(drop_threshold=0.8, name="a"))
    for batch_size in (1, 2, 5):
        s = drop_statistics(m, images, batch_size=batch_size)["a"]
        assert s["num_images"] == 2
        assert s["dropped_by_drop_mask"] == pytest.approx((1 / 16 + 1.0) / 2)
        assert s["below_background_threshold"] == 0.0  # ADL has no background stage
        assert "channel_candidates" not in s  # ADL has no channel part


def test_cagd_has_channel_keys_only_and_cam_model_has_none():
    s = drop_statistics(_feature_model(CAGD(beta=3.0, alpha=1.0, name="c")), _crafted())["c"]
    assert s["block_size"] is None and "dropped_by_drop_mask" not in s
    assert s["expected_channels_dropped"] == pytest.approx(2 / 4)
    cam = build_wsol_model("small_vgg", num_classes=3, method="cam", weights=None,
                           input_shape=(32, 32, 3))
    assert method_layers(cam) == [] and drop_statistics(cam, np.zeros((1, 32, 32, 3))) == {}


def test_wsol_model_reports_every_inserted_layer():
    model = build_wsol_model("small_vgg", num_classes=3, method="dgdm", weights=None,
                             input_shape=(32, 32, 3))
    stats = drop_statistics(model, np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)))
    assert list(stats) == [l.name for l in method_layers(model)] and stats
    for s in stats.values():
        assert all(0.0 <= s[k] <= 1.0 for k in ("dropped_by_drop_mask", "channel_candidates"))


def test_bad_input_is_a_clear_error():
    m = _feature_model(DGDM(name="d"))
    with pytest.raises(ValueError, match="4D"):
        drop_statistics(m, np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="batch_size"):
        drop_statistics(m, _crafted(), batch_size=0)


def test_format_one_line_per_layer():
    from keras_dgdm.diagnostics import format_drop_statistics

    m = _feature_model(DGDM(drop_threshold=0.8, background_threshold=0.3, block_size=1, name="d"))
    text = format_drop_statistics(drop_statistics(m, _crafted()))
    assert text == ("  d: drop mask erases 12.5 % of the 4x4 map: part blocks 6.2 % (block_size "
                    "1, 6.2 % above drop_threshold), background 6.2 % (6.2 % of the non-zero "
                    "positions; 0.0 % of the map is zero); 50.0 % of the channels are CAGD "
                    "candidates")
