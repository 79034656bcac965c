"""A split held in memory as numpy arrays, and its batches: the input pipeline without
TensorFlow (``TrainConfig.input_pipeline = "arrays"``; the synthetic benchmark on a machine
with JAX only).

* Training (``train_batches``): epoch ``e`` is the split in the order of
  ``numpy.random.default_rng([seed, e]).permutation``, each image flipped left-right with
  probability 0.5 (``epoch_arrays``); no resize or crop: the images must already have the
  training size. A stream over several epochs depends only on (seed, epoch), so a resumed run
  sees the same batches as an uninterrupted one.
* Evaluation (``eval_batches``): the split in order, as dicts of numpy arrays shaped like
  ``eval_pipeline``'s ("images", "labels", "boxes" padded with ``PAD_VALUE`` rows, "masks").
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import numpy as np

from keras_dgdm.boxes import PAD_VALUE


@dataclasses.dataclass
class ArrayData:
    """A dataset split in memory.

    Attributes:
        name: dataset name (e.g. "synthetic").
        split: "train", "val" or "test".
        images: uint8 (N, H, W, 3) RGB.
        labels: int32 (N,) class ids in ``[0, num_classes)``.
        boxes: float32 (N, K, 4) boxes (x0, y0, x1, y1), rows of ``PAD_VALUE`` after an
            image's last box.
        num_classes: number of classes of the dataset.
        class_names: ``num_classes`` names.
        masks: uint8 (N, H, W), 1 on the object, or None.
        part_boxes: float32 (N, 4) boxes of the discriminative part (synthetic), or None.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    num_classes: int
    class_names: list
    masks: Optional[np.ndarray] = None
    part_boxes: Optional[np.ndarray] = None

    @property
    def num_examples(self) -> int:
        """N."""
        return int(self.labels.shape[0])

    @property
    def has_masks(self) -> bool:
        """Whether the split carries object masks (PxAP)."""
        return self.masks is not None

    @property
    def image_size(self) -> tuple:
        """(H, W) of the images."""
        return tuple(self.images.shape[1:3])


def epoch_arrays(images, labels, seed, epoch):
    """The training arrays of one epoch: shuffled, each image flipped left-right with p=0.5.

    Depends only on (seed, epoch). Returns float32 images and int32 labels.

    Example:
        >>> x, y = epoch_arrays(np.zeros((4, 2, 2, 3), np.uint8), np.arange(4), seed=0, epoch=0)
        >>> x.dtype, sorted(y.tolist())
        (dtype('float32'), [0, 1, 2, 3])
    """
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(len(labels))
    flip = rng.random(len(labels)) < 0.5
    x = images[order].astype("float32")
    x[flip] = x[flip, :, ::-1]
    return x, labels[order].astype("int32")


def batches_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches of one pass over ``num_examples`` (the last one may be smaller)."""
    return -(-int(num_examples) // int(batch_size))


def train_batches(data: ArrayData, batch_size: int, seed: int, epochs, steps_per_epoch=None
                  ) -> Iterator[tuple]:
    """``(images, labels)`` batches of the given epochs, one after the other.

    Args:
        data: the train split.
        batch_size: images per batch; an epoch's last batch holds the rest.
        seed: the run's seed.
        epochs: iterable of epoch indices (e.g. ``range(start_epoch, epochs)``).
        steps_per_epoch: batches per epoch; ``None``: one pass. More than one pass continues
            with the passes of ``epoch_arrays(seed, (epoch, pass))``.
    """
    per_pass = batches_per_epoch(data.num_examples, batch_size)
    for epoch in epochs:
        steps = steps_per_epoch or per_pass
        done, turn = 0, 0
        while done < steps:
            key = epoch if turn == 0 else (epoch << 8) + turn
            x, y = epoch_arrays(data.images, data.labels, seed, key)
            for start in range(0, data.num_examples, batch_size):
                if done == steps:
                    break
                yield x[start:start + batch_size], y[start:start + batch_size]
                done += 1
            turn += 1


def eval_batches(data: ArrayData, batch_size: int, image_size=None) -> Iterator[dict]:
    """The split in order as evaluation batches (dicts of numpy arrays).

    Args:
        data: the split.
        batch_size: images per batch.
        image_size: the model's input side; a ValueError names both sizes when the images
            have another (this pipeline does not resize).
    """
    if image_size is not None and data.image_size != (int(image_size), int(image_size)):
        raise ValueError(
            f"input_pipeline 'arrays' does not resize: the {data.name} {data.split} images are "
            f"{data.image_size[0]}x{data.image_size[1]}, the model takes {image_size}x"
            f"{image_size}; generate the data at the model's size.")
    for start in range(0, data.num_examples, batch_size):
        sl = slice(start, start + batch_size)
        batch = {"images": data.images[sl].astype("float32"), "labels": data.labels[sl],
                 "boxes": data.boxes[sl]}
        if data.masks is not None:
            batch["masks"] = data.masks[sl]
        yield batch


def from_boxes(boxes) -> np.ndarray:
    """(N, 4) boxes or N lists of (k_i, 4) boxes -> float32 (N, K, 4) padded with ``PAD_VALUE``."""
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
        return boxes.astype(np.float32)[:, None, :]
    per_image = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
    out = np.full((len(per_image), max((len(b) for b in per_image), default=1), 4), PAD_VALUE,
                  np.float32)
    for i, b in enumerate(per_image):
        out[i, :len(b)] = b
    return out


__all__ = ["ArrayData", "epoch_arrays", "batches_per_epoch", "train_batches", "eval_batches",
           "from_boxes"]
