"""BackbonePreprocessing: each backbone's input preprocessing, inside the model.

WSOL models built by ``keras_dgdm.build_wsol_model`` take raw RGB pixels in [0, 255]; this layer
turns them into what the backbone's pretrained weights expect, so a SavedModel needs no
client-side preprocessing. The modes are those of ``keras.applications.imagenet_utils``:

* ``"caffe"`` (VGG16, ResNet50): RGB -> BGR, then subtract the ImageNet mean
  ``(103.939, 116.779, 123.68)`` (BGR order), no scaling;
* ``"tf"`` (InceptionV3): ``x / 127.5 - 1`` (to [-1, 1]);
* ``"torch"``: ``x / 255``, then subtract ``(0.485, 0.456, 0.406)`` and divide by
  ``(0.229, 0.224, 0.225)`` per RGB channel;
* ``"scale"`` (small_vgg): ``x / 255`` (to [0, 1]);
* ``"none"``: identity.
"""
from __future__ import annotations

import keras
from keras import ops

PREPROCESSING_MODES = ("caffe", "tf", "torch", "scale", "none")

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="keras_dgdm")
class BackbonePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to a backbone's expected input (weightless).

    Args:
        mode: one of ``"caffe"``, ``"tf"``, ``"torch"``, ``"scale"``, ``"none"`` (see the
            module docstring; they match ``keras.applications.imagenet_utils``).
        data_format: ``"channels_last"`` (NHWC, default from ``keras.config``) or
            ``"channels_first"``; the channel axis must have 3 channels in RGB order for
            ``"caffe"`` and ``"torch"``.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: image batch, RGB, values in [0, 255].

    Returns:
        The preprocessed batch, same shape.

    Example:
        >>> import numpy as np
        >>> layer = BackbonePreprocessing("tf")  # x / 127.5 - 1
        >>> float(keras.ops.convert_to_numpy(layer(np.full((1, 2, 2, 3), 255.0))).max())
        1.0
    """

    def __init__(self, mode="caffe", data_format=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"`mode` must be one of {PREPROCESSING_MODES}; got {mode!r}."
            )
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last' or 'channels_first'; "
                f"got {data_format!r}."
            )
        self.mode = mode
        self.data_format = data_format
        self.supports_masking = True

    def _per_channel(self, values, ndim):
        shape = [1] * ndim
        shape[-1 if self.data_format == "channels_last" else 1] = 3
        return ops.reshape(ops.convert_to_tensor(values, dtype=self.compute_dtype), shape)

    def build(self, input_shape):
        if self.mode in ("caffe", "torch"):
            axis = -1 if self.data_format == "channels_last" else 1
            channels = input_shape[axis]
            if channels is not None and channels != 3:
                raise ValueError(
                    f"BackbonePreprocessing(mode={self.mode!r}) needs 3 RGB channels on axis "
                    f"{axis}; got input shape {tuple(input_shape)}."
                )
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        ndim = len(x.shape)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1 if self.data_format == "channels_last" else 1)
            return x - self._per_channel(_CAFFE_MEAN_BGR, ndim)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            x = x / 255.0
            return (x - self._per_channel(_TORCH_MEAN, ndim)) / self._per_channel(_TORCH_STD, ndim)
        if self.mode == "scale":
            return x / 255.0
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "data_format": self.data_format})
        return config
