"""Training recipes: the default hyperparameters per dataset.

``TrainConfig.resolved()`` fills every field left ``None`` from the recipe that the dataset's
``DatasetSpec.recipe`` names. The values follow the reference recipes (ADL,
clovaai/wsolevaluation): SGD with momentum 0.9, new layers at ``lr_multiplier`` (10x) the lr of
pretrained ones, step decay by ``lr_decay_rate`` every ``lr_decay_epochs`` epochs (CUB: 50
epochs decayed every 15, ILSVRC: 10 decayed every 3), coupled weight decay. ``bn_momentum``
0.9 is PyTorch's ``momentum=0.1``: Keras' default 0.99 lags behind the weights on short runs,
so evaluation accuracy collapses while training accuracy is high (no effect on vgg16, which
has no BatchNorm). ``synthetic`` is the CPU recipe of ``python training/fit.py`` with no
arguments: small_vgg at 96x96 fine-tuned from the bundled ``synthetic_source`` weights (the
stand-in for ImageNet pretraining, ``training/pretrain.py``), the method layers after
block2_pool and block3_pool, 5 epochs with the lr step after 4 (how these were chosen:
EXPERIMENTS.md, section 0).
"""
from __future__ import annotations

from typing import Any

from keras_dgdm.data import get_dataset

#: Default hyperparameters per recipe name (one table; the README quotes it).
RECIPES: dict[str, dict[str, Any]] = {
    "synthetic": dict(
        backbone="small_vgg", method="dgdm", weights="synthetic_source", image_size=96,
        batch_size=32, epochs=5, lr=0.005, lr_multiplier=10.0, lr_decay_epochs=4,
        lr_decay_rate=0.1, momentum=0.9, weight_decay=5e-4, bn_momentum=0.9, freeze_bn=False,
        insert_at=["block2_pool", "block3_pool"],
    ),
    "cub": dict(
        backbone="vgg16", method="dgdm", weights="imagenet", image_size=224, batch_size=32,
        epochs=50, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=15, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=5e-4, bn_momentum=0.9, freeze_bn=False,
    ),
    "cars": dict(
        backbone="resnet50", method="dgdm", weights="imagenet", image_size=224, batch_size=32,
        epochs=50, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=15, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=1e-4, bn_momentum=0.9, freeze_bn=False,
    ),
    "ilsvrc": dict(
        backbone="resnet50", method="dgdm", weights="imagenet", image_size=224, batch_size=64,
        epochs=10, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=3, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=1e-4, bn_momentum=0.9, freeze_bn=False,
    ),
    "metadata": dict(
        backbone="vgg16", method="dgdm", weights="imagenet", image_size=224, batch_size=32,
        epochs=50, lr=0.01, lr_multiplier=10.0, lr_decay_epochs=15, lr_decay_rate=0.1,
        momentum=0.9, weight_decay=5e-4, bn_momentum=0.9, freeze_bn=False,
    ),
}


def recipe_for(dataset: str) -> dict[str, Any]:
    """The recipe of ``dataset`` (``DatasetSpec.recipe``); ValueError naming a dataset whose
    recipe is missing from ``RECIPES``, or an unknown dataset (listing the choices)."""
    spec = get_dataset(dataset)
    if spec.recipe not in RECIPES:
        raise ValueError(f"Dataset {dataset!r} trains with recipe {spec.recipe!r}, which "
                         f"RECIPES lacks (it has: {', '.join(RECIPES)}).")
    return RECIPES[spec.recipe]


__all__ = ["RECIPES", "recipe_for"]
