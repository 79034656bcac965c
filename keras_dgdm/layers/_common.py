"""Shared pieces of the attention-guided dropout layers: argument checks and the map math.

The math lives here once and is used by :class:`~keras_dgdm.layers.SAGD`,
:class:`~keras_dgdm.layers.ADL`, :class:`~keras_dgdm.layers.CAGD` and
:class:`~keras_dgdm.layers.DGDM` alike. Everything that runs inside a model is written with
``keras.ops`` / ``keras.random`` only (TensorFlow, JAX and PyTorch backends), computes in the
input's dtype, has static shapes (no data-dependent shapes, no Python loops over the batch or
the channels, no host syncs) and compiles under XLA.

Shapes: ``inputs`` is a 4D feature map, ``(batch, height, width, channels)`` for
``channels_last`` or ``(batch, channels, height, width)`` for ``channels_first``. Spatial maps
(``M_self``, the importance map, the drop mask) are kept as ``(batch, height, width)`` and
broadcast back over the channels with :func:`spatial_to_input`; channel masks are
``(batch, channels)`` and broadcast with :func:`channels_to_input`.
"""
from __future__ import annotations

import math
import numbers

import keras
from keras import ops

# ----------------------------------------------------------------------------------------------
# Argument validation (used in the layers' __init__ / build).
# ----------------------------------------------------------------------------------------------


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_unit_interval(name, value):
    """Returns ``float(value)`` if it is a real number in [0, 1], else raises ValueError."""
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}.")
    return float(value)


def check_background_threshold(value, drop_threshold):
    """``None``/0 (stage disabled) or a number in [0, 1) below ``drop_threshold``."""
    if value is None:
        return None
    value = check_unit_interval("background_threshold", value)
    if value >= drop_threshold:
        raise ValueError(
            "background_threshold must be smaller than drop_threshold (the background band "
            f"lies below the most discriminative part); got background_threshold={value!r} "
            f"and drop_threshold={drop_threshold!r}. Use None or 0 to disable the background "
            "stage."
        )
    return value


def check_block_size(value):
    """An int >= 1 or the string ``"adaptive"`` (the paper's Adap_7)."""
    if value == "adaptive" and isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(f'block_size must be an int >= 1 or "adaptive"; got {value!r}.')


def check_positive(name, value):
    """A finite real number > 0."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
    return float(value)


def check_top_k(value):
    """``None`` or an int >= 1."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(f"top_k must be None or an int >= 1; got {value!r}.")


def check_seed(value):
    """``None`` or an int >= 0 (for ``keras.random.SeedGenerator``)."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ValueError(f"seed must be None or an int >= 0; got {value!r}.")


def check_data_format(value):
    """``"channels_last"``, ``"channels_first"``, or ``None`` (keras.config.image_data_format())."""
    if value is None:
        return keras.config.image_data_format()
    if isinstance(value, str) and value.lower() in ("channels_last", "channels_first"):
        return value.lower()
    raise ValueError(
        'data_format must be "channels_last", "channels_first" or None (meaning '
        f"keras.config.image_data_format()); got {value!r}."
    )


def check_input_rank(layer_name, input_shape, data_format):
    """Raises ValueError unless ``input_shape`` is 4D."""
    if input_shape is None or len(input_shape) != 4:
        layout = (
            "(batch, height, width, channels)"
            if data_format == "channels_last"
            else "(batch, channels, height, width)"
        )
        raise ValueError(
            f"{layer_name} expects a 4D feature map {layout} (data_format={data_format!r}); "
            f"got an input of shape {input_shape}."
        )


def spatial_size(shape, data_format):
    """``(height, width)`` of a 4D shape (entries may be None)."""
    if data_format == "channels_last":
        return shape[1], shape[2]
    return shape[2], shape[3]


def channel_count(shape, data_format):
    """Number of channels of a 4D shape (may be None)."""
    return shape[-1] if data_format == "channels_last" else shape[1]


def adaptive_block_size(height, width):
    """The paper's Adap_7 block size: ``ceil(min(height, width) / 7)``.

    Example: a 14x14 map gives 2, a 28x28 map gives 4, a 7x7 map gives 1.
    """
    if height is None or width is None:
        raise ValueError(
            'block_size="adaptive" needs the feature map height and width to be known when the '
            f"layer is built; got height={height}, width={width}."
        )
    return max(1, math.ceil(min(int(height), int(width)) / 7))


def resolve_block_size(block_size, shape, data_format):
    """The int block size for an input of ``shape`` (resolves ``"adaptive"``)."""
    if block_size == "adaptive":
        return adaptive_block_size(*spatial_size(shape, data_format))
    return block_size


# ----------------------------------------------------------------------------------------------
# The maps (keras.ops only).
# ----------------------------------------------------------------------------------------------


def spatial_to_input(spatial_map, data_format):
    """(batch, H, W) -> broadcastable against the 4D input (a size-1 channel axis)."""
    return ops.expand_dims(spatial_map, -1 if data_format == "channels_last" else 1)


def channels_to_input(channel_map, data_format):
    """(batch, C) -> broadcastable against the 4D input (size-1 spatial axes)."""
    if data_format == "channels_last":
        return ops.expand_dims(ops.expand_dims(channel_map, 1), 1)
    return ops.expand_dims(ops.expand_dims(channel_map, -1), -1)


def self_attention_map(inputs, data_format):
    """``M_self``: the channel-wise average of the feature map, shape (batch, H, W)."""
    return ops.mean(inputs, axis=-1 if data_format == "channels_last" else 1)


def importance_map(m_self):
    """``M_imp = sigmoid(M_self)`` (paper eq. 2), same shape as ``m_self``."""
    return ops.sigmoid(m_self)


def grow_blocks(dropped, block_size):
    """Grows every dropped position of a 0/1 map (batch, H, W) into a block_size^2 block.

    DropBlock-style: a max-pool of the "dropped" indicator with stride 1 and 'same' padding, so
    the output keeps the input's shape. For an odd ``block_size`` k the block is centred on the
    dropped position (rows ``r - (k-1)/2 .. r + (k-1)/2``). For an even k, 'same' padding puts
    the extra padding row/column at the bottom/right end of the map, so output row ``i`` looks
    at input rows ``i - k/2 + 1 .. i + k/2``; a dropped pixel at row ``r`` therefore zeroes rows
    ``r - k/2 .. r + k/2 - 1``: the block's extra row lies above the pixel and its extra column
    to its left (``block_size=2``: rows ``r-1, r`` and columns ``c-1, c``). All Keras backends
    place the extra 'same' padding at the end, so this is the same on TensorFlow, JAX and torch.
    """
    if block_size == 1:
        return dropped
    grown = ops.max_pool(
        ops.expand_dims(dropped, -1),
        pool_size=block_size,
        strides=1,
        padding="same",
        data_format="channels_last",
    )
    return ops.squeeze(grown, -1)


def discriminative_part(m_self, drop_threshold):
    """Stage 1 seeds, 0/1 in ``m_self``'s dtype: ``M_self >= drop_threshold * max(M_self)``.

    The max is taken per sample. ``>=`` is the boundary of the reference ADL
    (clovaai/wsolevaluation keeps ``attention < threshold``), which the paper follows; the
    paper's eq. 4 writes ``>``, the two differ only on exact ties. A sample whose map is all
    zero (max 0) has no seed.
    """
    peak = ops.max(m_self, axis=(1, 2), keepdims=True)
    seeds = ops.logical_and(ops.greater_equal(m_self, drop_threshold * peak), ops.greater(peak, 0))
    return ops.cast(seeds, m_self.dtype)


def background_positions(m_self, background_threshold):
    """Stage 2, 0/1 in ``m_self``'s dtype: ``M_self < background_threshold * max(M_self)``.

    All zeros when ``background_threshold`` is None or 0 (stage 2 off).
    """
    if not background_threshold:
        return ops.zeros_like(m_self)
    peak = ops.max(m_self, axis=(1, 2), keepdims=True)
    return ops.cast(ops.less(m_self, background_threshold * peak), m_self.dtype)


def drop_mask_stages(m_self, drop_threshold, background_threshold, block_size):
    """The two stages of ``M_drop2`` as 0/1 maps (batch, H, W), 1 = dropped by that stage.

    Returns ``(part_blocks, background)``: the discriminative part's seeds grown into
    ``block_size`` blocks (:func:`discriminative_part`, :func:`grow_blocks`), and the
    background positions (:func:`background_positions`), which are NOT grown: the paper's
    stage 2 removes "a small set of background", while blocks grown around every background
    position eat the object from outside (EXPERIMENTS.md measures how much).
    """
    part_blocks = grow_blocks(discriminative_part(m_self, drop_threshold), block_size)
    return part_blocks, background_positions(m_self, background_threshold)


def spatial_drop_mask(m_self, drop_threshold, background_threshold, block_size):
    """``M_drop2`` (paper eq. 4), shape (batch, H, W), 0 = dropped, 1 = kept.

    Dropped: the most discriminative part, ``M_self >= drop_threshold * max(M_self)`` (delta_h)
    grown into ``block_size x block_size`` blocks (:func:`grow_blocks`), and, when
    ``background_threshold`` is not None/0, the background ``M_self < background_threshold *
    max(M_self)`` (delta_l) position by position (:func:`drop_mask_stages`). The max is taken
    per sample, so the thresholds are meant for non-negative (post-ReLU) maps; an all-zero map
    (max = 0) loses no part and gives no NaN.
    """
    part_blocks, background = drop_mask_stages(
        m_self, drop_threshold, background_threshold, block_size)
    return 1.0 - ops.maximum(part_blocks, background)


def select_spatial_map(drop_mask, imp_map, drop_rate, seed_generator):
    """One draw per call: ``drop_mask`` with probability ``drop_rate``, else ``imp_map``.

    Arithmetic selection ``u * drop_mask + (1 - u) * imp_map`` with a 0/1 scalar ``u`` instead
    of ``keras.ops.cond``: both maps are tiny (batch, H, W) tensors, so computing both costs
    next to nothing, while the selection has no control flow -- it traces to the same graph
    under XLA, tf.function, jax.jit and torch, and needs no host sync. With ``u`` exactly 0 or
    1 the result is exactly one of the two maps.
    """
    draw = keras.random.uniform((), seed=seed_generator)
    use_drop = ops.cast(ops.less(draw, drop_rate), drop_mask.dtype)
    return use_drop * drop_mask + (1.0 - use_drop) * imp_map


def spatial_multiplier(
    inputs, data_format, drop_rate, drop_threshold, background_threshold, block_size, seed_generator
):
    """The SAGD map to multiply into ``inputs`` (training mode), broadcastable against it."""
    m_self = self_attention_map(inputs, data_format)
    mask = spatial_drop_mask(m_self, drop_threshold, background_threshold, block_size)
    chosen = select_spatial_map(mask, importance_map(m_self), drop_rate, seed_generator)
    return spatial_to_input(chosen, data_format)


def channel_attention(inputs, data_format):
    """``S``: the global average pool of the feature map, shape (batch, C)."""
    return ops.mean(inputs, axis=(1, 2) if data_format == "channels_last" else (2, 3))


def channel_drop_candidates(s, beta, top_k):
    """Which channels CAGD may drop, as a 0/1 map (batch, C) in ``s``'s dtype.

    Without ``top_k``: channels with ``|S_c| < beta * min|S|``. With ``top_k``: channels outside
    the top-k by ``|S_c|`` (``beta`` is then not used); the k-th largest magnitude comes from
    ``keras.ops.top_k`` and is used as a threshold (ties with it are kept, so ties can keep more
    than k channels), which keeps every shape static.

    Dead channels (``S_c = 0``, common after a ReLU) are never candidates and the minimum is
    taken over the live ones (``|S_c| > 0``): otherwise ``beta * min|S| = 0`` and the layer
    would silently do nothing. A dead post-ReLU channel is all zeros, so zeroing it or not
    changes nothing; a sample whose channels are all dead is passed through unchanged.
    """
    magnitude = ops.abs(s)
    alive = ops.greater(magnitude, 0.0)
    if top_k is None:
        # Dead channels are replaced by the largest magnitude, so the min is over live ones;
        # with no live channel the min is 0 and nothing is below it. No inf, no NaN.
        largest = ops.max(magnitude, axis=-1, keepdims=True)
        live_min = ops.min(ops.where(alive, magnitude, largest), axis=-1, keepdims=True)
        below = ops.less(magnitude, beta * live_min)
    else:
        kth = ops.top_k(magnitude, top_k, sorted=True)[0][:, top_k - 1 :]
        below = ops.less(magnitude, kth)
    return ops.cast(ops.logical_and(below, alive), s.dtype)


def channel_drop_mask(inputs, data_format, alpha, beta, top_k, seed_generator):
    """``M_drop1`` (batch, C): each candidate channel is 0 with probability ``alpha``, else 1.

    Independent draws per sample and channel; non-candidates are 1 (kept, no rescaling).
    """
    s = channel_attention(inputs, data_format)
    candidates = channel_drop_candidates(s, beta, top_k)
    draws = keras.random.uniform(ops.shape(s), seed=seed_generator)
    hit = ops.cast(ops.less(draws, alpha), s.dtype)
    return 1.0 - candidates * hit


# ----------------------------------------------------------------------------------------------
# The shared layer skeleton: arguments, seed generator, build checks, config.
# ----------------------------------------------------------------------------------------------

#: Hyperparameters of the spatial (SAGD) and channel (CAGD) parts, in get_config order.
SPATIAL_HYPERPARAMETERS = ("drop_rate", "drop_threshold", "background_threshold", "block_size")
CHANNEL_HYPERPARAMETERS = ("alpha", "beta", "top_k")


class AttentionDropoutLayer(keras.layers.Layer):
    """Base of SAGD, CAGD, DGDM (and ADL): what they share besides the map math.

    Holds the validated ``seed`` / ``data_format``, one ``keras.random.SeedGenerator``, the
    build-time checks (4D input; ``block_size="adaptive"`` resolved from the input's size;
    ``top_k`` at most the channel count) and a ``get_config`` that lists the subclass's
    ``HYPERPARAMETERS``. Subclasses validate their hyperparameters with :meth:`_set_spatial` /
    :meth:`_set_channel` and implement ``call``. No weights.
    """

    HYPERPARAMETERS: tuple = ()

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_seed(seed)
        self.data_format = check_data_format(data_format)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True
        self._block_size = None

    def _set_spatial(self, drop_rate, drop_threshold, background_threshold, block_size):
        self.drop_rate = check_unit_interval("drop_rate", drop_rate)
        self.drop_threshold = check_unit_interval("drop_threshold", drop_threshold)
        self.background_threshold = check_background_threshold(
            background_threshold, self.drop_threshold
        )
        self.block_size = check_block_size(block_size)
        self._block_size = None if self.block_size == "adaptive" else self.block_size

    def _set_channel(self, alpha, beta, top_k):
        self.alpha = check_unit_interval("alpha", alpha)
        self.beta = check_positive("beta", beta)
        self.top_k = check_top_k(top_k)

    def build(self, input_shape):
        check_input_rank(type(self).__name__, input_shape, self.data_format)
        if "block_size" in self.HYPERPARAMETERS:
            self._block_size = resolve_block_size(self.block_size, input_shape, self.data_format)
        if "top_k" in self.HYPERPARAMETERS:
            check_top_k_fits(self.top_k, input_shape, self.data_format)
        self.built = True

    @property
    def resolved_block_size(self):
        """The int block size in use (``"adaptive"`` resolved once the layer is built).

        None for a layer without a spatial part (CAGD).
        """
        return self._block_size

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        for name in self.HYPERPARAMETERS + ("seed", "data_format"):
            config[name] = getattr(self, name)
        return config


def check_top_k_fits(top_k, input_shape, data_format):
    """Raises ValueError when ``top_k`` exceeds the (static) number of channels."""
    channels = channel_count(input_shape, data_format)
    if top_k is not None and channels is not None and top_k > channels:
        raise ValueError(
            f"top_k must be at most the number of channels ({channels}); got top_k={top_k}."
        )
