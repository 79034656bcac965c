"""CAGD: channel attention guided dropout (DGDM paper, section 3.2)."""
from __future__ import annotations

import keras

from keras_dgdm.layers import _common


@keras.saving.register_keras_serializable(package="keras_dgdm")
class CAGD(_common.AttentionDropoutLayer):
    """Channel attention guided dropout (CAGD), the channel half of DGDM.

    The channel attention ``S`` is the global average pool of the input (per sample, per
    channel). Channels whose magnitude ``|S_c|`` is below ``beta * min|S|`` -- or, when
    ``top_k`` is given, those outside the top-k by magnitude (``beta`` is then not used) -- are
    set to 0 with probability ``alpha``, independently per sample and channel (the paper's
    ``M_drop1``, after Targeted Dropout); all other channels are kept as they are (multiplied by
    1, no rescaling). At inference the input tensor itself is returned. No weights.

    Dead channels: after a ReLU many channels have ``S_c = 0``, so ``min|S| = 0`` and the rule
    above would never drop anything. Here the minimum is taken over the live channels
    (``|S_c| > 0``) and dead channels are never dropped: a dead post-ReLU channel is all zeros,
    so zeroing it or not changes nothing; a sample whose channels are all dead is passed
    through unchanged.

    ``top_k`` is applied with ``keras.ops.top_k`` and a threshold on the k-th largest magnitude
    (static shapes; ties with the k-th value are kept). ``top_k`` larger than the number of
    channels is an error at build time.

    Args:
        alpha: float in [0, 1], drop probability of a candidate channel (0.5 in the paper).
        beta: float > 0, the drop threshold as a multiple of the smallest live channel
            magnitude (3 is the paper's best).
        top_k: None, or int >= 1: keep the k channels of largest magnitude always and make all
            others candidates instead of using ``beta``.
        seed: int or None, seed of the layer's ``keras.random.SeedGenerator``.
        data_format: ``"channels_last"``, ``"channels_first"`` or None for
            ``keras.config.image_data_format()``.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: 4D feature map.
        training: bool; the mask is applied only when True.

    Returns:
        A tensor of the input's shape and dtype.

    Example:

    >>> import numpy as np
    >>> x = np.ones((1, 2, 2, 3), "float32") * np.array([1.0, 2.0, 9.0], "float32")
    >>> y = CAGD(alpha=1.0, beta=3.0)(x, training=True)  # 1 and 2 are below 3 * 1
    >>> keras.ops.convert_to_numpy(y)[0, 0, 0].tolist()
    [0.0, 0.0, 9.0]
    """

    HYPERPARAMETERS = _common.CHANNEL_HYPERPARAMETERS

    def __init__(self, alpha=0.5, beta=3.0, top_k=None, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self._set_channel(alpha, beta, top_k)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        mask = _common.channel_drop_mask(
            inputs, self.data_format, self.alpha, self.beta, self.top_k, self.seed_generator
        )
        return inputs * _common.channels_to_input(mask, self.data_format)
