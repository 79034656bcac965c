#!/usr/bin/env python
"""Pretrain small_vgg on the synthetic source task: the stand-in for ImageNet weights.

    python training/pretrain.py          # writes keras_dgdm/weights/small_vgg_synthetic_source.weights.h5

The paper fine-tunes ImageNet-pretrained networks; the synthetic benchmark has no ImageNet, so
its pretrained start is a plain classification training (method "cam", from scratch) of
``small_vgg`` on a *source* task: ``synthetic.SOURCE_TASK``, 30 classes whose part codes and
body colours are disjoint from the benchmark's 10 (same generator, ``class_offset=26``). The
headless network's weights (blocks 1-4, no conv6 / classifier, like a ``*_notop.h5`` file)
are written where ``--weights synthetic_source`` finds them. Every method of the benchmark then
fine-tunes from that same start. Training goes through ``keras_dgdm.train.train`` (the run
directory ``runs/pretrain-synthetic-source/`` keeps its log and resumes if interrupted).
"""
import argparse
import os
import sys

import cli_support  # training/ (this script's folder): standard library only

#: Where ``--weights synthetic_source`` finds the file (``keras_dgdm.backbones.BUNDLED_WEIGHTS``;
#: spelled out here so that ``--help`` does not start TensorFlow).
OUTPUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_dgdm",
                      "weights", "small_vgg_synthetic_source.weights.h5")

#: The pretraining run: what ``python training/pretrain.py`` trains with no flags.
DEFAULTS = dict(image_size=96, num_train=9000, num_val=1000, epochs=8, lr_decay_epochs=6,
                seed=0)


def source_config(image_size, num_train, num_val, epochs, lr_decay_epochs, seed, output_dir):
    """The ``TrainConfig`` of the source-task pretraining (method cam, small_vgg, no weights)."""
    from keras_dgdm.data import synthetic  # after cli_support.start: loads Keras
    from keras_dgdm.train import TrainConfig

    return TrainConfig(
        dataset="synthetic", backbone="small_vgg", method="cam", weights="none",
        data_options=dict(synthetic.SOURCE_TASK, num_train=num_train, num_val=num_val,
                          num_test=1),
        image_size=image_size, epochs=epochs, lr_decay_epochs=lr_decay_epochs, seed=seed,
        output_dir=output_dir, run_name="pretrain-synthetic-source", evaluate=False,
        export=False)


def build_parser():
    """The pretrain.py argument parser."""
    p = argparse.ArgumentParser(prog="pretrain.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for key, value in DEFAULTS.items():
        p.add_argument("--" + key.replace("_", "-"), type=int, default=value)
    p.add_argument("--output-dir", default="runs", help="the run directory's parent")
    p.add_argument("--output", default=OUTPUT, help="where the headless weights go")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help=cli_support.DEBUG_HELP)
    return p


def main(argv=None):
    """Trains on the source task, writes the headless weights; returns their path."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = cli_support.start(argv)
    args = build_parser().parse_args(argv)
    from keras_dgdm.backbones import save_small_vgg_features
    from keras_dgdm.train import loop

    config = source_config(**{k: getattr(args, k) for k in DEFAULTS},
                           output_dir=args.output_dir)
    with cli_support.user_errors("pretrain.py", (loop.SetupError, OSError),
                                 debug or args.debug,
                                 interrupted="; rerun the same command to resume"):
        result = loop.train(config, verbose=cli_support.fit_verbosity(args.quiet))
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        save_small_vgg_features(result["model"], args.output)
    print(f"source task: train accuracy {100 * (result['train_accuracy'] or 0):.2f} %, "
          f"val accuracy {100 * (result['val_accuracy'] or 0):.2f} % after "
          f"{result['epochs_done']} epochs ({result['run_dir']})")
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
