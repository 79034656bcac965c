"""ADL: attention-based dropout layer (Choe & Shim, CVPR 2019), the baseline DGDM builds on."""
from __future__ import annotations

import keras

from keras_dgdm.layers.sagd import SAGD


@keras.saving.register_keras_serializable(package="keras_dgdm")
class ADL(SAGD):
    """Attention-based dropout layer (ADL; Choe & Shim, CVPR 2019).

    The baseline that SAGD extends, and exactly SAGD with ``block_size=1`` and no background
    stage (it reuses SAGD's code): ``M_self`` is the channel-wise mean of the input; the drop
    mask is 0 where ``M_self >= drop_threshold * max(M_self)`` (max per sample; the reference
    ADL keeps ``attention < threshold``), pixel by pixel, and 1 elsewhere; the importance map is ``sigmoid(M_self)``. At each training call ONE draw
    picks the drop mask with probability ``drop_rate``, the importance map otherwise, and the
    chosen map is multiplied into the input (shared across channels). At inference the input
    tensor itself is returned. No weights.

    Args:
        drop_rate: float in [0, 1], how often the drop mask is chosen (0.75 in ADL).
        drop_threshold: float in [0, 1], fraction of the per-sample max of ``M_self`` above which
            pixels are dropped: 0.8 for VGG, 0.9 for ResNet in ADL (the model builder passes the
            backbone's value).
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
    >>> y = ADL(drop_rate=1.0)(x, training=True)  # always the drop mask
    >>> int((keras.ops.convert_to_numpy(y)[0, ..., 0] == 0).sum())  # only the peak pixel
    1
    """

    def __init__(self, drop_rate=0.75, drop_threshold=0.8, seed=None, data_format=None, **kwargs):
        super().__init__(
            drop_rate=drop_rate,
            drop_threshold=drop_threshold,
            background_threshold=None,
            block_size=1,
            seed=seed,
            data_format=data_format,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["background_threshold"], config["block_size"]
        return config
