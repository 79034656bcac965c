"""What a model's attention-dropout layers erase: the masks they would draw, on real images.

DGDM's hyperparameters are relative (``drop_threshold`` and ``background_threshold`` are
fractions of the per-sample maximum of the channel-mean map, ``beta`` a multiple of the smallest
live channel magnitude, ``block_size`` in feature-map cells), so what they erase depends on the
feature maps a network actually produces. A flat channel-mean map, for instance, puts many
positions above ``0.8 x max`` and a 3x3 block around each of them can cover most of a small map.
:func:`drop_statistics` measures that, with the layers' own math (``keras_dgdm.layers._common``)
and hyperparameters:

    >>> from keras_dgdm.diagnostics import drop_statistics
    >>> stats = drop_statistics(model, images)          # doctest: +SKIP
    >>> stats["dgdm_after_block4_conv2_relu"]["dropped_by_drop_mask"]   # doctest: +SKIP
    0.73

The feature maps are computed in inference mode (BatchNorm moving statistics, every method
layer the identity), i.e. what the layer sees at the end of training up to BatchNorm's batch
statistics; no random draw is made, the numbers are the masks' expected coverage.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_dgdm.layers import _common

#: The keys of one layer's statistics (fractions in [0, 1], means over the images).
STAT_KEYS = (
    "zero_positions",  # positions with M_self = 0 (every channel 0; dropping them changes nothing)
    "above_drop_threshold",  # stage-1 seeds: M_self >= drop_threshold * max
    "dropped_by_part_blocks",  # stage 1: the seeds grown into block_size blocks
    "below_background_threshold",  # stage 2: M_self < background_threshold * max (not grown)
    "background_of_nonzero",  # stage 2's share of the NON-zero positions (what it really removes)
    "dropped_by_drop_mask",  # both stages together: what the drop mask zeroes
    "channel_candidates",  # channels CAGD may drop (beta rule or top_k)
    "dead_channels",  # channels with S_c = 0 (never dropped)
    "expected_channels_dropped",  # alpha * candidates: the expected share of channels zeroed
)


def method_layers(model):
    """The model's attention-dropout layers (ADL, SAGD, CAGD, DGDM), in graph order."""
    return [l for l in model.layers if isinstance(l, _common.AttentionDropoutLayer)]


def _layer_stats(layer, features):
    """Per-image statistics of one layer on its input ``features`` (numpy, 4D)."""
    fmt = layer.data_format
    x = ops.convert_to_tensor(features)
    out = {}
    if "drop_threshold" in layer.HYPERPARAMETERS:
        m_self = _common.self_attention_map(x, fmt)
        zero = ops.cast(ops.equal(m_self, 0.0), "float32")
        seeds = _common.discriminative_part(m_self, layer.drop_threshold)
        part_blocks, background = _common.drop_mask_stages(
            m_self, layer.drop_threshold, layer.background_threshold, layer.resolved_block_size)
        background = ops.cast(background, "float32")
        nonzero = ops.sum(1.0 - zero, axis=(1, 2))
        out["zero_positions"] = ops.mean(zero, axis=(1, 2))
        out["above_drop_threshold"] = ops.mean(ops.cast(seeds, "float32"), axis=(1, 2))
        out["dropped_by_part_blocks"] = ops.mean(ops.cast(part_blocks, "float32"), axis=(1, 2))
        out["below_background_threshold"] = ops.mean(background, axis=(1, 2))
        out["background_of_nonzero"] = ops.sum(background * (1.0 - zero), axis=(1, 2)) / ops.maximum(
            nonzero, 1.0)
        dropped = ops.maximum(ops.cast(part_blocks, "float32"), background)
        out["dropped_by_drop_mask"] = ops.mean(dropped, axis=(1, 2))
    if "beta" in layer.HYPERPARAMETERS:
        s = _common.channel_attention(x, fmt)
        candidates = ops.cast(_common.channel_drop_candidates(s, layer.beta, layer.top_k), "float32")
        out["channel_candidates"] = ops.mean(candidates, axis=-1)
        out["dead_channels"] = ops.mean(ops.cast(ops.equal(s, 0.0), "float32"), axis=-1)
        out["expected_channels_dropped"] = layer.alpha * out["channel_candidates"]
    return {k: np.asarray(ops.convert_to_numpy(v), dtype=np.float64) for k, v in out.items()}


def drop_statistics(model, images, batch_size=32):
    """What each attention-dropout layer of ``model`` would erase on ``images``.

    Args:
        model: a Keras functional model holding ADL / SAGD / CAGD / DGDM layers (e.g. from
            ``build_wsol_model``), each called once.
        images: array (N, H, W, 3) of the model's input (raw RGB for ``build_wsol_model``).
        batch_size: images per forward pass.

    Returns:
        ``{layer_name: stats}`` in graph order (empty for a model without such layers). ``stats``
        holds ``"layer"`` (class name), ``"map_size"`` ([height, width] of the layer's input),
        ``"block_size"`` (resolved; None for CAGD), ``"num_images"`` and, as means over the
        images, those of :data:`STAT_KEYS` that apply to the layer (spatial keys for ADL / SAGD
        / DGDM, channel keys for CAGD / DGDM). ``dropped_by_drop_mask`` is the share of the map
        the drop mask zeroes when it is chosen (probability ``drop_rate``).

    Raises:
        ValueError: ``images`` is not a non-empty 4D array, ``batch_size`` < 1, or a method
            layer is used more than once in the model.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty 4D array (N, H, W, C); got shape {images.shape}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size!r}.")
    layers = method_layers(model)
    if not layers:
        return {}
    shared = [l.name for l in layers if len(l._inbound_nodes) != 1]
    if shared:
        raise ValueError(
            f"drop_statistics needs each method layer called once; {shared} are called "
            "more than once.")
    probe = keras.Model(model.input, [l.input for l in layers])
    sums = {l.name: {} for l in layers}
    for start in range(0, len(images), int(batch_size)):
        features = probe(images[start:start + int(batch_size)], training=False)
        if not isinstance(features, (list, tuple)):
            features = [features]
        for layer, f in zip(layers, features):
            for key, values in _layer_stats(layer, f).items():
                sums[layer.name][key] = sums[layer.name].get(key, 0.0) + float(values.sum())
    result = {}
    for layer in layers:
        shape = layer.input.shape
        result[layer.name] = {
            "layer": type(layer).__name__,
            "map_size": [int(v) for v in _common.spatial_size(shape, layer.data_format)],
            "block_size": layer.resolved_block_size,
            "num_images": int(len(images)),
            **{k: sums[layer.name][k] / len(images) for k in STAT_KEYS if k in sums[layer.name]},
        }
    return result


def format_drop_statistics(stats) -> str:
    """One line per layer of :func:`drop_statistics`' result, for logs and the CLI."""
    lines = []
    for name, s in stats.items():
        parts = []
        if "dropped_by_drop_mask" in s:
            h, w = s["map_size"]
            parts.append(
                f"drop mask erases {100 * s['dropped_by_drop_mask']:.1f} % of the {h}x{w} map: "
                f"part blocks {100 * s['dropped_by_part_blocks']:.1f} % (block_size "
                f"{s['block_size']}, {100 * s['above_drop_threshold']:.1f} % above "
                f"drop_threshold), background {100 * s['below_background_threshold']:.1f} % "
                f"({100 * s['background_of_nonzero']:.1f} % of the non-zero positions; "
                f"{100 * s['zero_positions']:.1f} % of the map is zero)")
        if "channel_candidates" in s:
            parts.append(f"{100 * s['channel_candidates']:.1f} % of the channels are CAGD "
                         "candidates")
        lines.append(f"  {name}: " + "; ".join(parts))
    return "\n".join(lines)
