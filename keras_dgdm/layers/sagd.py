"""SAGD: spatial attention guided dropblock (DGDM paper, section 3.3)."""
from __future__ import annotations

import keras

from keras_dgdm.layers import _common


@keras.saving.register_keras_serializable(package="keras_dgdm")
class SAGD(_common.AttentionDropoutLayer):
    """Spatial attention guided dropblock (SAGD), the spatial half of DGDM.

    ``M_self`` is the channel-wise mean of the input (the self-attention map). Two maps are made
    from it:

    * the importance map ``sigmoid(M_self)`` (paper eq. 2);
    * the drop mask ``M_drop2`` (paper eq. 4), 0 = dropped, in two stages:

      - stage 1, the most discriminative part: positions with
        ``M_self >= drop_threshold * max(M_self)`` (the paper's delta_h; max per sample; ``>=``
        as in the reference ADL), grown into contiguous ``block_size x block_size`` blocks
        (DropBlock-style max-pool of the seeds, stride 1, 'same' padding). For an even
        ``block_size`` the block's extra row lies above and its extra column left of the seed
        (``block_size=2``: rows ``r-1, r``, columns ``c-1, c``);
      - stage 2, the background: positions with ``M_self < background_threshold *
        max(M_self)`` (delta_l), each dropped alone, not grown: the paper's stage 2 removes "a
        small set of background", and blocks grown around background positions eat the object
        from outside.

    At each training call ONE uniform draw picks the drop mask with probability ``drop_rate``
    and the importance map otherwise ("we randomly select one of these two maps at each
    iteration"); the chosen map is multiplied into the input, shared across channels. The
    selection is arithmetic (``u * drop_mask + (1 - u) * importance_map`` with ``u`` in {0, 1}):
    no control flow, so it compiles the same under XLA and on every backend, and both maps are
    only (batch, H, W) in size. At inference the layer is exactly the identity: the input tensor
    itself is returned. The layer has no weights; its only state is the seed generator.

    The thresholds are relative to the per-sample maximum of ``M_self``, which assumes a
    non-negative (post-ReLU) feature map, as where the paper inserts the module. An all-zero
    input drops nothing (no NaN).

    Args:
        drop_rate: float in [0, 1], how often the drop mask is chosen instead of the importance
            map (0.75 in the paper and ADL).
        drop_threshold: float in [0, 1], delta_h as a fraction of the per-sample max of
            ``M_self`` (0.8, ADL's VGG value which the paper follows).
        background_threshold: float in [0, drop_threshold), delta_l as a fraction of the
            per-sample max of ``M_self``; ``None`` or 0 disables the background stage. The paper
            gives no value; this library's default, 0.05, is chosen on val among values for
            which the stage removes a small share of the non-zero positions of trained maps
            (EXPERIMENTS.md; ``keras_dgdm.diagnostics.drop_statistics`` measures it on your
            model).
        block_size: int >= 1, side of the part's dropped blocks (1 = pixel-wise like ADL; 3 =
            the paper's best with the background stage), or ``"adaptive"`` for the paper's Adap_7,
            ``ceil(min(H, W) / 7)`` (resolved when the layer is built; a 14x14 map gives 2).
        seed: int or None, seed of the layer's ``keras.random.SeedGenerator``.
        data_format: ``"channels_last"``, ``"channels_first"`` or None for
            ``keras.config.image_data_format()``.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: 4D feature map.
        training: bool; the map is applied only when True.

    Returns:
        A tensor of the input's shape and dtype.

    Example:

    >>> import numpy as np
    >>> x = np.ones((1, 5, 5, 2), "float32"); x[0, 2, 2] = 2.0  # one peak
    >>> y = SAGD(drop_rate=1.0, block_size=3)(x, training=True)  # always the drop mask
    >>> int((keras.ops.convert_to_numpy(y)[0, ..., 0] == 0).sum())  # the 3x3 block around it
    9
    """

    HYPERPARAMETERS = _common.SPATIAL_HYPERPARAMETERS

    def __init__(
        self,
        drop_rate=0.75,
        drop_threshold=0.8,
        background_threshold=0.05,
        block_size=3,
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self._set_spatial(drop_rate, drop_threshold, background_threshold, block_size)

    def compute_maps(self, inputs):
        """The maps of SAGD for ``inputs``, for inspection and figures (no randomness).

        Returns a dict with ``"self_attention"`` (``M_self``), ``"importance_map"`` and
        ``"drop_mask"`` (``M_drop2``), each of shape (batch, H, W).
        """
        if not self.built:
            self.build(tuple(inputs.shape))
        m_self = _common.self_attention_map(inputs, self.data_format)
        return {
            "self_attention": m_self,
            "importance_map": _common.importance_map(m_self),
            "drop_mask": _common.spatial_drop_mask(
                m_self, self.drop_threshold, self.background_threshold, self._block_size
            ),
        }

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return inputs * _common.spatial_multiplier(
            inputs,
            self.data_format,
            self.drop_rate,
            self.drop_threshold,
            self.background_threshold,
            self._block_size,
            self.seed_generator,
        )
