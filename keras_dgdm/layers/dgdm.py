"""DGDM: the dual-attention guided dropblock module (SAGD + CAGD, the paper's Fig. 2)."""
from __future__ import annotations

import keras

from keras_dgdm.layers import _common


@keras.saving.register_keras_serializable(package="keras_dgdm")
class DGDM(_common.AttentionDropoutLayer):
    """Dual-attention guided dropblock module (DGDM): SAGD and CAGD together.

    As in the paper's Fig. 2, at each training call
    ``output = input x (selected SAGD map) x (CAGD channel mask)``:

    * the spatial map is SAGD's drop mask ``M_drop2`` (the most discriminative part, at or
      above ``drop_threshold * max(M_self)``, grown into ``block_size`` blocks; the background,
      below ``background_threshold * max(M_self)``, position by position) with
      probability ``drop_rate``, or else the importance map ``sigmoid(M_self)``, ONE draw per
      call (see :class:`~keras_dgdm.layers.SAGD`);
    * the channel mask ``M_drop1`` is applied at every training call: channels whose global
      average ``|S_c|`` is below ``beta`` times the smallest live one (or outside the top-k when
      ``top_k`` is given) are zeroed with probability ``alpha`` per sample and channel (see
      :class:`~keras_dgdm.layers.CAGD`, including how dead channels are handled).

    Both maps come from the attention of the layer's own input and are computed by the same
    functions as SAGD and CAGD use (``keras_dgdm.layers._common``). At inference the layer is
    exactly the identity (the input tensor is returned). No weights; one seed generator.

    Defaults are the paper's best settings: ``drop_rate=0.75``, ``block_size=3``, ``beta=3``,
    ``alpha=0.5``. ``drop_threshold=0.8`` is ADL's VGG value, which the paper follows
    ("following the settings of [3]"; ADL uses 0.9 for ResNet). The paper gives no value for
    delta_l: the ``background_threshold`` default is this library's reading (see
    :class:`~keras_dgdm.layers.SAGD`).

    Distributed training: under ``tf.distribute.MirroredStrategy`` the seed generator's state is
    mirrored, so every replica makes the same draws. The drop-mask-vs-importance-map choice is
    then made once per step for the global batch, which is the paper's per-iteration choice;
    the masks themselves still depend on each replica's own data. (The CAGD coin flips of
    replica r's sample i equal those of the other replicas' sample i.)

    Args:
        drop_rate: float in [0, 1], how often the SAGD drop mask is chosen.
        drop_threshold: float in [0, 1], delta_h as a fraction of the per-sample max of
            ``M_self``.
        background_threshold: float in [0, drop_threshold), delta_l as a fraction of the
            per-sample max of ``M_self``; ``None`` or 0 disables the background stage.
        block_size: int >= 1 or ``"adaptive"`` (``ceil(min(H, W) / 7)``, the paper's Adap_7).
            An even size puts the block's extra row above and extra column left of the dropped
            pixel.
        alpha: float in [0, 1], drop probability of a CAGD candidate channel.
        beta: float > 0, CAGD threshold as a multiple of the smallest live channel magnitude.
        top_k: None or int >= 1, keep the top-k channels by magnitude (replaces ``beta``).
        seed: int or None, seed of the layer's ``keras.random.SeedGenerator``.
        data_format: ``"channels_last"``, ``"channels_first"`` or None for
            ``keras.config.image_data_format()``.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: 4D feature map.
        training: bool; the maps are applied only when True.

    Returns:
        A tensor of the input's shape and dtype.

    Example:

    >>> x = keras.layers.Input((14, 14, 512))
    >>> y = DGDM(block_size="adaptive", seed=0)(x)  # 2x2 blocks on a 14x14 map
    >>> model = keras.Model(x, keras.layers.GlobalAveragePooling2D()(y))
    """

    HYPERPARAMETERS = _common.SPATIAL_HYPERPARAMETERS + _common.CHANNEL_HYPERPARAMETERS

    def __init__(
        self,
        drop_rate=0.75,
        drop_threshold=0.8,
        background_threshold=0.05,
        block_size=3,
        alpha=0.5,
        beta=3.0,
        top_k=None,
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self._set_spatial(drop_rate, drop_threshold, background_threshold, block_size)
        self._set_channel(alpha, beta, top_k)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        spatial = _common.spatial_multiplier(
            inputs,
            self.data_format,
            self.drop_rate,
            self.drop_threshold,
            self.background_threshold,
            self._block_size,
            self.seed_generator,
        )
        channel = _common.channel_drop_mask(
            inputs, self.data_format, self.alpha, self.beta, self.top_k, self.seed_generator
        )
        return inputs * spatial * _common.channels_to_input(channel, self.data_format)
