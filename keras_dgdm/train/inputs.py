"""What a training run feeds ``model.fit``, for either input pipeline of ``TrainConfig``:

* ``"tf.data"``: ``keras_dgdm.data.load`` splits through ``train_pipeline`` /
  ``eval_pipeline`` (the reference protocol's resize, crop and flip);
* ``"arrays"``: ``keras_dgdm.data.load_arrays`` splits in memory through
  ``keras_dgdm.data.arrays`` (shuffle and flip, no resize; no TensorFlow).

Either way the training stream is one stream of epochs ``start_epoch .. epochs - 1`` whose
epoch ``e`` depends only on (seed, e), never on how many epochs this process has already run:
that is what makes a resumed run equal an uninterrupted one.
"""
from __future__ import annotations

from typing import Optional

import keras

from keras_dgdm import data as wsol_data
from keras_dgdm.data import arrays
from keras_dgdm.train import processes


def load_split(config, split: str):
    """Split ``split`` of ``config.dataset`` for ``config.input_pipeline`` (a ``WSOLData`` or an
    ``ArrayData``)."""
    load = wsol_data.load_arrays if config.input_pipeline == "arrays" else wsol_data.load
    return load(config.dataset, split, data_dir=config.data_dir, **config.data_options)


def steps_per_epoch(config, train_data) -> int:
    """Batches per epoch: ``config.steps_per_epoch``, else one pass over the train split (with
    several processes: counted on the whole split, the same on every process)."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    if config.input_pipeline == "arrays":
        return arrays.batches_per_epoch(train_data.num_examples, config.batch_size)
    if processes.process_count() > 1:
        return processes.steps_per_epoch(train_data.num_examples, config.batch_size)
    one_epoch = wsol_data.train_pipeline(train_data, config.image_size, config.batch_size,
                                         seed=config.seed, shuffle=True, repeat=False)
    return _num_batches(one_epoch)


def _num_batches(dataset) -> Optional[int]:
    import tensorflow as tf  # the tf.data pipeline's (deferred: the arrays one needs none)

    n = int(dataset.cardinality())
    if n == int(tf.data.INFINITE_CARDINALITY):
        return None
    if n < 0:
        n = sum(1 for _ in dataset)
    return n


def training_stream(config, train_data, start_epoch: int, steps_per_epoch: int,
                    batch_size: Optional[int] = None):
    """The training batches of epochs ``start_epoch .. config.epochs - 1``.

    tf.data: epoch ``e`` is ``train_pipeline`` seeded ``seed + e``; arrays: a generator over
    ``arrays.train_batches``. ``batch_size`` (default ``config.batch_size``): this process's
    share of a global batch.
    """
    epochs = range(start_epoch, config.epochs)
    batch_size = batch_size or config.batch_size
    if config.input_pipeline == "arrays":
        batches = arrays.train_batches(train_data, batch_size, config.seed, epochs,
                                       steps_per_epoch)
        if keras.backend.backend() == "tensorflow":
            return _as_tf_dataset(batches, train_data, batch_size)
        return batches
    stream = None
    for epoch in epochs:
        ds = wsol_data.train_pipeline(train_data, config.image_size, batch_size,
                                      seed=config.seed + epoch, shuffle=True, repeat=True)
        ds = ds.take(steps_per_epoch)
        stream = ds if stream is None else stream.concatenate(ds)
    return stream


def _as_tf_dataset(batches, train_data, batch_size: int):
    """TensorFlow: the batches as a ``tf.data.Dataset`` whose batch dimension is ``batch_size``
    when every batch is full (the train split a multiple of it), unknown otherwise: the shapes
    ``model.fit`` gives numpy arrays. A generator's batches get an unknown batch dimension,
    and TensorFlow's kernels for the two shapes differ in the last bit of float32."""
    import tensorflow as tf  # the TensorFlow backend's

    size = batch_size if train_data.num_examples % batch_size == 0 else None
    signature = (tf.TensorSpec((size, *train_data.images.shape[1:]), tf.float32),
                 tf.TensorSpec((size,), tf.int32))
    return tf.data.Dataset.from_generator(lambda: batches, output_signature=signature)


def validation_data(config, val_data):
    """``(validation_data, validation_batch_size)`` for ``model.fit``: the val batches it
    reports ``val_accuracy`` on. On several processes each feeds an equal share, whole batches
    only (the processes step together); ``(None, None)`` when that leaves none."""
    if config.input_pipeline == "arrays":
        return (val_data.images.astype("float32"), val_data.labels), config.eval_batch_size
    if processes.process_count() == 1:
        return wsol_data.eval_pipeline(val_data, config.image_size,
                                       config.eval_batch_size).map(_to_xy), None
    local = processes.per_process(config.eval_batch_size, "--eval-batch-size")
    share = processes.shard(val_data, equal=True)
    batches = share.num_examples // local
    if not batches:
        return None, None
    return wsol_data.eval_pipeline(share, config.image_size, local).map(_to_xy).take(batches), None


def _to_xy(batch):
    return batch["images"], batch["labels"]


__all__ = ["load_split", "steps_per_epoch", "training_stream", "validation_data"]
