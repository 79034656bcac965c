"""The callbacks of a training run: resumption, the layers' random stream, the lr log."""
from __future__ import annotations

import importlib.util
import logging
import os

import keras
import numpy as np


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the lr of pretrained layers used during the epoch to the logs (CSV, TensorBoard)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self._lr


class EpochSeededLayers(keras.callbacks.Callback):
    """Sets every layer ``SeedGenerator`` of the model to ``(seed, epoch * 2**20)`` at the start
    of each epoch.

    A SeedGenerator's state is not part of a model's weights file, so BackupAndRestore cannot
    restore it; making the layers' random stream a function of (seed, epoch) instead of "how
    many steps this process has run" is what lets a resumed run draw the same drop masks as an
    uninterrupted one. Epochs do not share draws while a layer makes fewer than 2**20 draws per
    epoch.
    """

    def on_epoch_begin(self, epoch, logs=None):
        for v in self.model.variables:
            if v.name == "seed_generator_state":
                state = keras.ops.convert_to_numpy(v)
                counter = (int(epoch) << 20) % (2 ** 31)
                v.assign(np.array([state[0], counter], dtype=state.dtype))


def make_callbacks(config, extra=()):
    """The callbacks of a run in ``config.run_dir`` (a resolved TrainConfig), then ``extra``:
    BackupAndRestore (resumption), ``EpochSeededLayers``, ``LearningRateLogger``, the
    last-epoch checkpoint, the CSV log, TensorBoard (when tensorboard and TensorFlow are
    installed) and TerminateOnNaN."""
    run = config.run_dir
    os.makedirs(os.path.join(run, "checkpoints"), exist_ok=True)
    board = []
    if all(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorflow")):
        board = [keras.callbacks.TensorBoard(os.path.join(run, "logs"))]
    else:
        logging.getLogger("keras_dgdm.train").warning(
            "TensorBoard logs skipped: they need the tensorboard and tensorflow packages "
            "(pip install tensorboard); log.csv still records every epoch.")
    return [
        # Keeps its state after training so that a finished run is not retrained on rerun and
        # a larger --epochs continues it.
        keras.callbacks.BackupAndRestore(os.path.join(run, "backup"), delete_checkpoint=False),
        EpochSeededLayers(),
        LearningRateLogger(),
        keras.callbacks.ModelCheckpoint(os.path.join(run, "checkpoints", "last.keras")),
        keras.callbacks.CSVLogger(os.path.join(run, "log.csv"), append=True),
        *board,
        keras.callbacks.TerminateOnNaN(),
        *extra,
    ]


__all__ = ["LearningRateLogger", "EpochSeededLayers", "make_callbacks"]
