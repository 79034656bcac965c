"""Tests for keras_dgdm.layers: SAGD, CAGD, DGDM, ADL on crafted, hand-checkable inputs."""
import numpy as np
import pytest

import keras
from keras import ops

from keras_dgdm.layers import ADL, CAGD, DGDM, METHOD_LAYERS, SAGD
from keras_dgdm.layers import _common

ALL_LAYERS = [ADL, SAGD, CAGD, DGDM]


def np_out(x):
    return ops.convert_to_numpy(x)


def peak_map(size=7, peak=(3, 3), channels=2, base=0.5, peak_value=1.0, background_rows=()):
    """A (1, size, size, channels) map: ``base`` everywhere, one peak, optional 0.05 rows."""
    m = np.full((size, size), base, "float32")
    for r in background_rows:
        m[r, :] = 0.05
    m[peak] = peak_value
    return np.repeat(m[None, :, :, None], channels, axis=-1)


def zeroed(y):
    """The 0/1 map of positions zeroed in every channel of sample 0."""
    return (np_out(y)[0] == 0).all(axis=-1).astype(int)


# ----------------------------------------------------------------------------------------------
# SAGD / ADL: the spatial maps.
# ----------------------------------------------------------------------------------------------


def test_sagd_drop_path_zeroes_the_3x3_block_around_one_peak():
    x = peak_map()  # M_self: 0.5 everywhere, 1.0 at (3, 3); only the peak is > 0.8 * 1.0
    y = SAGD(drop_rate=1.0, background_threshold=None, block_size=3)(x, training=True)
    expected = np.zeros((7, 7), int)
    expected[2:5, 2:5] = 1
    np.testing.assert_array_equal(zeroed(y), expected)
    # Everything outside the block passes unchanged (multiplied by exactly 1).
    keep = expected == 0
    np.testing.assert_array_equal(np_out(y)[0][keep], x[0][keep])


def test_sagd_part_grows_into_a_block_but_background_is_dropped_alone():
    # 9x9 map: the object band at 0.5 x max, the peak 1.0 at (4, 4), one background cell 0.02
    # (< 0.1 x max) at (7, 1). block_size 3: the peak's 3x3 block and the background cell
    # alone are zeroed; the object band around both is kept, unchanged.
    x = peak_map(size=9, peak=(4, 4))
    x[0, 7, 1, :] = 0.02
    y = SAGD(drop_rate=1.0, background_threshold=0.1, block_size=3)(x, training=True)
    expected = np.zeros((9, 9), int)
    expected[3:6, 3:6] = 1
    expected[7, 1] = 1
    np.testing.assert_array_equal(zeroed(y), expected)
    keep = expected == 0
    np.testing.assert_array_equal(np_out(y)[0][keep], x[0][keep])
    # The same map without the background stage: only the peak's block.
    y1 = SAGD(drop_rate=1.0, background_threshold=None, block_size=3)(x, training=True)
    expected[7, 1] = 0
    np.testing.assert_array_equal(zeroed(y1), expected)


def test_sagd_background_row_is_not_grown():
    # A background row (0.05 < 0.1 x max) is dropped row for row, never the row next to it.
    x = peak_map(background_rows=(0,))
    y = SAGD(drop_rate=1.0, background_threshold=0.1, block_size=3)(x, training=True)
    expected = np.zeros((7, 7), int)
    expected[0, :] = 1
    expected[2:5, 2:5] = 1
    np.testing.assert_array_equal(zeroed(y), expected)


@pytest.mark.parametrize("layer", [
    lambda: ADL(drop_rate=1.0, drop_threshold=0.5),
    lambda: SAGD(drop_rate=1.0, drop_threshold=0.5, background_threshold=None, block_size=1),
])
def test_drop_threshold_boundary_is_inclusive_as_in_the_reference_adl(layer):
    # M_self: 4 at (1, 1), exactly 0.5 x 4 = 2 at (5, 5), 1 elsewhere. The reference ADL keeps
    # attention < threshold, so the cell equal to the threshold is dropped with the peak.
    x = np.ones((1, 7, 7, 2), "float32")
    x[0, 1, 1], x[0, 5, 5] = 4.0, 2.0
    expected = np.zeros((7, 7), int)
    expected[1, 1] = expected[5, 5] = 1
    np.testing.assert_array_equal(zeroed(layer()(x, training=True)), expected)


def test_sagd_even_block_size_extends_up_and_left():
    x = peak_map()
    layer = SAGD(drop_rate=1.0, background_threshold=None, block_size=2)
    expected = np.zeros((7, 7), int)
    expected[2:4, 2:4] = 1  # rows r-1, r and columns c-1, c of the peak at (3, 3)
    np.testing.assert_array_equal(zeroed(layer(x, training=True)), expected)


def test_sagd_adaptive_block_size_on_14x14_is_2():
    assert _common.adaptive_block_size(14, 14) == 2
    assert _common.adaptive_block_size(7, 28) == 1
    assert _common.adaptive_block_size(15, 20) == 3
    x = peak_map(size=14, peak=(7, 7))
    layer = SAGD(drop_rate=1.0, background_threshold=None, block_size="adaptive")
    y = layer(x, training=True)
    assert layer.resolved_block_size == 2
    expected = np.zeros((14, 14), int)
    expected[6:8, 6:8] = 1
    np.testing.assert_array_equal(zeroed(y), expected)


def test_sagd_importance_path_is_input_times_sigmoid_of_channel_mean():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 3.0, (2, 5, 6, 3)).astype("float32")
    y = SAGD(drop_rate=0.0)(x, training=True)
    expected = x / (1.0 + np.exp(-x.mean(axis=-1, keepdims=True)))
    np.testing.assert_allclose(np_out(y), expected, rtol=1e-5)


def test_sagd_channels_first_matches_channels_last():
    x = peak_map(background_rows=(0,), channels=3)
    y_last = SAGD(drop_rate=1.0, data_format="channels_last")(x, training=True)
    x_first = np.transpose(x, (0, 3, 1, 2))
    y_first = SAGD(drop_rate=1.0, data_format="channels_first")(x_first, training=True)
    np.testing.assert_array_equal(np.transpose(np_out(y_first), (0, 2, 3, 1)), np_out(y_last))


def test_sagd_max_is_per_sample():
    # Sample 1 is sample 0 scaled by 10: the same positions must be dropped in both.
    x = np.concatenate([peak_map(), 10.0 * peak_map()])
    y = np_out(SAGD(drop_rate=1.0, block_size=1, background_threshold=None)(x, training=True))
    np.testing.assert_array_equal(y[0] == 0, y[1] == 0)
    assert (y[0] == 0).sum() == 2  # the peak, in both channels


def test_adl_is_pixelwise_and_ignores_background():
    x = peak_map(background_rows=(0,))
    y = ADL(drop_rate=1.0)(x, training=True)
    expected = np.zeros((7, 7), int)
    expected[3, 3] = 1  # the background row is kept: ADL has no background stage
    np.testing.assert_array_equal(zeroed(y), expected)


def test_sagd_compute_maps():
    maps = SAGD(block_size=1, background_threshold=None).compute_maps(peak_map())
    np.testing.assert_allclose(np_out(maps["self_attention"])[0, 3, 3], 1.0)
    np.testing.assert_allclose(np_out(maps["importance_map"])[0, 0, 0], 1 / (1 + np.exp(-0.5)))
    assert np_out(maps["drop_mask"]).sum() == 48


def test_drop_mask_frequency_is_near_drop_rate():
    # A constant map: the drop path zeroes everything (all pixels > 0.8 * max), the importance
    # path multiplies by sigmoid(1) > 0, so each call shows which map was drawn.
    x = np.ones((1, 3, 3, 1), "float32")
    layer = SAGD(drop_rate=0.75, seed=1)
    n = 400
    drops = sum(float(np_out(layer(x, training=True)).max()) == 0.0 for _ in range(n))
    assert abs(drops / n - 0.75) < 0.07  # sd of the frequency is 0.022; seeded, so not flaky


def test_one_draw_per_call_is_shared_by_the_whole_batch():
    x = np.ones((16, 3, 3, 1), "float32")
    layer = SAGD(drop_rate=0.5, seed=3)
    for _ in range(20):
        per_sample_drop = np_out(layer(x, training=True)).max(axis=(1, 2, 3)) == 0
        assert per_sample_drop.all() or not per_sample_drop.any()


# ----------------------------------------------------------------------------------------------
# CAGD: the channel mask.
# ----------------------------------------------------------------------------------------------


def channel_map(means, batch=1, size=2):
    """A (batch, size, size, C) map whose channel c is the constant means[c]."""
    return np.broadcast_to(np.asarray(means, "float32"), (batch, size, size, len(means))).copy()


def zeroed_channels(y):
    """(batch, C) booleans: channel entirely zeroed."""
    return (np_out(y) == 0).all(axis=(1, 2))


def test_cagd_only_zeroes_channels_below_beta_min_about_alpha_of_them():
    # |S| = 1, 2, 10, 4: beta * min = 3, so channels 0 and 1 are candidates, 2 and 3 are not.
    x = channel_map([1.0, 2.0, 10.0, 4.0], batch=1000)
    y = np_out(CAGD(alpha=0.5, beta=3.0, seed=0)(x, training=True))
    z = (y == 0).all(axis=(1, 2))
    assert not z[:, 2:].any()
    assert abs(z[:, :2].mean() - 0.5) < 0.05  # 2000 independent draws, sd 0.011
    # Channels not dropped are kept exactly (multiplied by 1, no rescaling).
    kept = np.broadcast_to(~z[:, None, None, :], x.shape)
    np.testing.assert_array_equal(y[kept], x[kept])


def test_cagd_alpha_one_zeroes_every_candidate_and_negative_means_use_magnitude():
    x = channel_map([-1.0, 2.0, -10.0, 4.0], batch=3)
    z = zeroed_channels(CAGD(alpha=1.0, beta=3.0)(x, training=True))
    np.testing.assert_array_equal(z, [[True, True, False, False]] * 3)


def test_cagd_dead_channels_do_not_disable_the_layer():
    # Post-ReLU: channel 0 is dead (S_0 = 0). min|S| over live channels is 1, so beta * min = 3
    # and channels 1 (|S|=1) and 2 (|S|=2) are candidates; with the naive min (0) nothing would
    # ever be dropped.
    x = channel_map([0.0, 1.0, 2.0, 10.0], batch=4)
    z = zeroed_channels(CAGD(alpha=1.0, beta=3.0)(x, training=True))
    np.testing.assert_array_equal(z[:, 1:], [[True, True, False]] * 4)


def test_cagd_sample_with_only_dead_channels_is_passed_through():
    # Sample 0: all channels dead after a ReLU. Sample 1: channels with mean 0 but signed
    # values (+1/-1), also "dead" (S_c = 0): passed through untouched, never dropped.
    x = np.zeros((2, 2, 2, 3), "float32")
    x[1, 0, :, :] = 1.0
    x[1, 1, :, :] = -1.0
    y = np_out(CAGD(alpha=1.0, beta=3.0)(x, training=True))
    np.testing.assert_array_equal(y, x)
    assert not np.isnan(y).any()


def test_cagd_zero_mean_channel_is_never_a_candidate():
    # Channel 0 has values +1/-1 (S_0 = 0, "dead" by the rule); channels 1 and 2 are live with
    # |S| = 1 and 10: channel 1 is dropped (alpha=1), channel 0 is passed through as documented.
    x = channel_map([0.0, 1.0, 10.0], batch=2)
    x[:, 0, :, 0] = 1.0
    x[:, 1, :, 0] = -1.0
    y = np_out(CAGD(alpha=1.0, beta=3.0)(x, training=True))
    np.testing.assert_array_equal(y[..., 0], x[..., 0])
    np.testing.assert_array_equal((y == 0).all(axis=(1, 2))[:, 1:], [[True, False]] * 2)


def test_cagd_top_k_keeps_the_top_k_channels_always():
    x = channel_map([1.0, 2.0, 10.0, 5.0], batch=500)
    z = zeroed_channels(CAGD(alpha=0.5, top_k=2, seed=4)(x, training=True))
    assert not z[:, 2:].any()  # the two largest, 10 and 5, are always kept
    assert abs(z[:, :2].mean() - 0.5) < 0.06
    z1 = zeroed_channels(CAGD(alpha=1.0, top_k=1)(x, training=True))
    np.testing.assert_array_equal(z1, [[True, True, False, True]] * 500)


def test_cagd_channels_first():
    x = np.transpose(channel_map([1.0, 2.0, 10.0, 4.0], batch=2), (0, 3, 1, 2))
    y = np_out(CAGD(alpha=1.0, data_format="channels_first")(x, training=True))
    np.testing.assert_array_equal((y == 0).all(axis=(2, 3)), [[True, True, False, False]] * 2)


# ----------------------------------------------------------------------------------------------
# DGDM: both.
# ----------------------------------------------------------------------------------------------


def test_dgdm_is_input_times_spatial_map_times_channel_mask():
    # M_self is 0.5 everywhere but 1.0 at (3, 3); |S_1| = 19 |S_0|, so with beta = 3 channel 0
    # is a CAGD candidate (|S_0| < 3 |S_0|) and channel 1 is not.
    m = peak_map(channels=1)[..., 0]
    x = np.stack([0.1 * m, 1.9 * m], axis=-1)  # channel mean = m
    layer = DGDM(drop_rate=1.0, background_threshold=None, alpha=1.0, beta=3.0)
    y = np_out(layer(x, training=True))
    block = np.zeros((7, 7), bool)
    block[2:5, 2:5] = True
    np.testing.assert_array_equal(y[0, ..., 0], np.zeros((7, 7)))  # channel 0 dropped by CAGD
    np.testing.assert_array_equal(y[0, ..., 1], np.where(block, 0.0, x[0, ..., 1]))  # SAGD block
    # The importance path with no CAGD drop (alpha=0): input x sigmoid(M_self).
    y0 = np_out(DGDM(drop_rate=0.0, alpha=0.0)(x, training=True))
    np.testing.assert_allclose(y0, x / (1 + np.exp(-x.mean(-1, keepdims=True))), rtol=1e-5)


@pytest.mark.parametrize("cls", ALL_LAYERS)
@pytest.mark.parametrize("drop_rate", [0.0, 1.0])
def test_all_zero_input_gives_zeros_not_nan(cls, drop_rate):
    kwargs = {} if cls is CAGD else {"drop_rate": drop_rate}
    y = np_out(cls(**kwargs)(np.zeros((2, 4, 4, 3), "float32"), training=True))
    np.testing.assert_array_equal(y, np.zeros_like(y))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "mixed_float16", "mixed_bfloat16"])
def test_dgdm_computes_in_the_input_dtype(dtype):
    layer = DGDM(drop_rate=1.0, background_threshold=None, alpha=0.0, dtype=dtype)
    x = peak_map()
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
    assert layer.compute_dtype in ("bfloat16", "float16")
    assert zeroed(y).sum() == 9
    z = np_out(layer(np.zeros((1, 4, 4, 2), "float32"), training=True)).astype("float32")
    assert not np.isnan(z).any()


# ----------------------------------------------------------------------------------------------
# Generic checks over all four layers.
# ----------------------------------------------------------------------------------------------


def test_method_registry():
    assert METHOD_LAYERS == {"adl": ADL, "sagd": SAGD, "cagd": CAGD, "dgdm": DGDM}


@pytest.mark.parametrize("cls", ALL_LAYERS)
def test_inference_is_the_identity(cls):
    x = ops.convert_to_tensor(np.random.default_rng(1).uniform(0, 2, (2, 5, 5, 3)), "float32")
    layer = cls()
    assert layer(x, training=False) is x
    assert layer(x) is x  # training defaults to inference
    inp = keras.Input((5, 5, 3))
    model = keras.Model(inp, cls()(inp))
    np.testing.assert_array_equal(np_out(model(x, training=False)), np_out(x))
    np.testing.assert_array_equal(model.predict(np_out(x), verbose=0), np_out(x))


@pytest.mark.parametrize("cls", ALL_LAYERS)
def test_no_weights_only_a_seed_state(cls):
    layer = cls(seed=3)
    layer.build((None, 5, 5, 3))
    # No parameters: nothing to train, nothing in a weights file ...
    assert layer.weights == [] and layer.count_params() == 0
    # ... and one variable, the SeedGenerator's state (not a weight, never trained).
    (state,) = layer.variables
    assert state is layer.seed_generator.state and not state.trainable


INVALID = [
    (SAGD, {"drop_rate": 1.5}, "drop_rate"),
    (SAGD, {"drop_rate": -0.1}, "drop_rate"),
    (SAGD, {"drop_threshold": 2.0}, "drop_threshold"),
    (SAGD, {"background_threshold": -0.5}, "background_threshold"),
    (SAGD, {"background_threshold": 0.9, "drop_threshold": 0.8}, "background_threshold"),
    (SAGD, {"block_size": 0}, "block_size"),
    (SAGD, {"block_size": 2.5}, "block_size"),
    (SAGD, {"block_size": "auto"}, "block_size"),
    (SAGD, {"seed": "x"}, "seed"),
    (SAGD, {"data_format": "NHWC"}, "data_format"),
    (ADL, {"drop_rate": 2}, "drop_rate"),
    (ADL, {"drop_threshold": True}, "drop_threshold"),
    (CAGD, {"alpha": 1.1}, "alpha"),
    (CAGD, {"beta": 0}, "beta"),
    (CAGD, {"beta": -3}, "beta"),
    (CAGD, {"top_k": 0}, "top_k"),
    (CAGD, {"top_k": 2.0}, "top_k"),
    (DGDM, {"drop_rate": 3}, "drop_rate"),
    (DGDM, {"block_size": -1}, "block_size"),
    (DGDM, {"alpha": -1}, "alpha"),
    (DGDM, {"beta": float("inf")}, "beta"),
    (DGDM, {"top_k": -2}, "top_k"),
    (DGDM, {"data_format": "channels_middle"}, "data_format"),
]


@pytest.mark.parametrize("cls,kwargs,name", INVALID)
def test_invalid_arguments_raise_naming_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize("cls", ALL_LAYERS)
def test_input_rank_must_be_4(cls):
    with pytest.raises(ValueError, match="4D"):
        cls()(np.zeros((2, 5, 3), "float32"), training=True)


def test_top_k_larger_than_channels_raises_at_build():
    with pytest.raises(ValueError, match="top_k"):
        CAGD(top_k=5).build((None, 4, 4, 3))
    with pytest.raises(ValueError, match="top_k"):
        DGDM(top_k=5).build((None, 4, 4, 3))


CONFIGS = [
    (ADL, {"drop_rate": 0.6, "drop_threshold": 0.9, "seed": 3, "data_format": "channels_first"}),
    (SAGD, {"drop_rate": 0.5, "drop_threshold": 0.7, "background_threshold": None,
            "block_size": "adaptive", "seed": 1, "data_format": "channels_last"}),
    (CAGD, {"alpha": 0.25, "beta": 2.5, "top_k": 8, "seed": 2, "data_format": "channels_first"}),
    (DGDM, {"drop_rate": 0.7, "drop_threshold": 0.85, "background_threshold": 0.2,
            "block_size": 2, "alpha": 0.4, "beta": 2.0, "top_k": 4, "seed": 5,
            "data_format": "channels_last"}),
]


@pytest.mark.parametrize("cls,kwargs", CONFIGS)
def test_get_config_round_trip(cls, kwargs):
    layer = cls(name="probe", **kwargs)
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value, key
    clone = cls.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is cls and revived.get_config() == config


@pytest.mark.parametrize("cls", ALL_LAYERS)
def test_default_data_format_is_resolved(cls):
    assert cls().get_config()["data_format"] == keras.config.image_data_format()


def tiny_model(layer):
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = layer(h)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inp, out)


def test_model_with_dgdm_saves_and_loads(tmp_path):
    model = tiny_model(DGDM(block_size="adaptive", top_k=2, seed=9, name="dgdm"))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("dgdm"), DGDM)
    assert loaded.get_layer("dgdm").get_config() == model.get_layer("dgdm").get_config()
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_jit_compiled_fit_step_runs():
    keras.utils.set_random_seed(0)
    model = tiny_model(DGDM(block_size=2, top_k=2, seed=0))  # also the top_k path under XLA
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    state = np_out(model.layers[2].seed_generator.state).copy()
    history = model.fit(x, np.zeros((4, 2), "float32"), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(np_out(model.layers[2].seed_generator.state), state)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")
def test_mirrored_strategy_fit_runs_and_advances_the_seed_state():
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        layer = DGDM(seed=0)
        model = tiny_model(layer)
        model.compile(optimizer="sgd", loss="mse")
    state = np_out(layer.seed_generator.state).copy()
    x = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 3)).astype("float32")
    history = model.fit(x, np.zeros((8, 2), "float32"), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(np_out(layer.seed_generator.state), state)


@pytest.mark.parametrize("cls", ALL_LAYERS)
def test_same_seed_same_training_outputs(cls):
    x = np.random.default_rng(2).uniform(0, 2, (4, 6, 6, 8)).astype("float32")
    a, b, c = cls(seed=11), cls(seed=11), cls(seed=12)
    outs_a = [np_out(a(x, training=True)) for _ in range(20)]
    outs_b = [np_out(b(x, training=True)) for _ in range(20)]
    outs_c = [np_out(c(x, training=True)) for _ in range(20)]
    for ya, yb in zip(outs_a, outs_b):
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(ya, yc) for ya, yc in zip(outs_a, outs_c))
