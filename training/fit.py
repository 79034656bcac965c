#!/usr/bin/env python
"""Train, evaluate and export a WSOL model.

    python training/fit.py                      # DGDM on the synthetic benchmark, ~5 min on CPU
    python training/fit.py --dataset cub --data-dir ~/data --backbone vgg16 --method dgdm
    python training/fit.py --dataset synthetic --method adl --drop-rate 0.5 --epochs 4

Defaults come from keras_dgdm.training.RECIPES (per dataset); every flag overrides one field of
keras_dgdm.training.TrainConfig. The method hyperparameter flags (--drop-rate ... --top-k) are
derived from the method layers' signatures. Rerunning the same command resumes the run in
OUTPUT_DIR/RUN_NAME from its last finished epoch.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cli_support  # noqa: E402  (training/ is on sys.path; standard library only)


def parse_value(text):
    """'none' -> None, '3' -> 3, '0.5' -> 0.5, 'true'/'false' -> bool, otherwise the string."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _key_value(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), parse_value(value)


def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser():
    """The fit.py argument parser (hyperparameter flags from the layer signatures)."""
    from keras_dgdm.training import RECIPES, STRATEGIES, method_hyperparameters

    p = argparse.ArgumentParser(
        prog="fit.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="synthetic",
                   help=f"dataset name; recipes exist for {', '.join(RECIPES)}")
    d.add_argument("--data-dir", default=None, help="where the dataset lives")
    d.add_argument("--data-option", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="extra keyword for keras_dgdm.data.load (repeatable)")
    d.add_argument("--image-size", type=int, default=None, help="train/eval image size (recipe)")
    m = p.add_argument_group("model")
    m.add_argument("--backbone", default=None, help="vgg16, resnet50, inception_v3, small_vgg")
    m.add_argument("--method", default=None, help="cam, adl, sagd, cagd, dgdm")
    m.add_argument("--weights", default=None, help="imagenet, none or a weights file path")
    m.add_argument("--insert-at", type=_csv, default=None,
                   help="comma-separated layer names/globs after which the method layer goes")
    m.add_argument("--bn-momentum", type=float, default=None,
                   help="BatchNorm momentum (recipe: 0.9; see keras_dgdm.training)")
    m.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="freeze BatchNorm while fine-tuning (recipe; see build_wsol_model)")
    h = p.add_argument_group("method hyperparameters (layer defaults when not given)")
    for name, default in method_hyperparameters().items():
        h.add_argument("--" + name.replace("_", "-"), dest="hp_" + name, type=parse_value,
                       default=argparse.SUPPRESS, help=f"layer default: {default}")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--steps-per-epoch", type=int, default=None,
                   help="batches per epoch (default: one pass over the train split)")
    t.add_argument("--batch-size", type=int, default=None, help="global batch size")
    t.add_argument("--lr", type=float, default=None, help="lr of pretrained layers")
    t.add_argument("--lr-multiplier", type=float, default=None, help="lr factor of new layers")
    t.add_argument("--lr-decay-epochs", type=int, default=None, help="step decay period")
    t.add_argument("--lr-decay-rate", type=float, default=None, help="step decay factor")
    t.add_argument("--momentum", type=float, default=None)
    t.add_argument("--nesterov", action="store_true")
    t.add_argument("--weight-decay", type=float, default=None, help="coupled L2 (PyTorch-style)")
    t.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("run")
    r.add_argument("--output-dir", default="runs", help="runs go to OUTPUT_DIR/RUN_NAME")
    r.add_argument("--run-name", default=None,
                   help="default: DATASET-BACKBONE-METHOD-SIZEpx-seedSEED")
    r.add_argument("--strategy", default="auto", choices=STRATEGIES,
                   help="multiworker: TensorFlow's is refused (broken upstream); several hosts "
                        "train with the JAX backend and --num-processes")
    r.add_argument("--num-processes", type=int,
                   default=os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"),
                   help="processes (hosts) training together, JAX backend: every one runs the "
                        "same command with its --process-id (env KERAS_DISTRIBUTION_NUM_PROCESSES)")
    r.add_argument("--process-id", type=int,
                   default=os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0"),
                   help="this process's index; 0 writes the run directory, evaluates and exports "
                        "(env KERAS_DISTRIBUTION_PROCESS_ID)")
    r.add_argument("--coordinator", metavar="HOST:PORT",
                   default=os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"),
                   help="where process 0 coordinates the run, the same for every process (env "
                        "KERAS_DISTRIBUTION_JOB_ADDRESSES)")
    r.add_argument("--devices", type=_csv, default=None,
                   help="e.g. /gpu:0,/gpu:1 or /cpu:0,/cpu:1 (two replicas on one CPU)")
    r.add_argument("--mixed-precision", nargs="?", const="auto", default=None,
                   help="auto (bf16 on CPU/TPU, fp16 on GPU) or a keras policy name")
    r.add_argument("--jit", action="store_true", help="compile with XLA")
    r.add_argument("--no-eval", action="store_true", help="skip evaluation after training")
    r.add_argument("--eval-batch-size", type=int, default=None)
    r.add_argument("--cam-curve-interval", type=float, default=0.01)
    r.add_argument("--no-export", action="store_true")
    r.add_argument("--export-dir", default="saved_models")
    r.add_argument("--export-version", type=int, default=1)
    r.add_argument("--quiet", action="store_true",
                   help="no progress output (default: a progress bar on a terminal, one line "
                        "per epoch otherwise)")
    r.add_argument("--debug", action="store_true", help=cli_support.DEBUG_HELP)
    return p


def config_from_args(args):
    """TrainConfig from parsed flags (recipe fields left None are resolved later)."""
    from keras_dgdm.training import TrainConfig

    hparams = {k[3:]: v for k, v in vars(args).items() if k.startswith("hp_")}
    return TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, data_options=dict(args.data_option),
        backbone=args.backbone, method=args.method, method_kwargs=hparams,
        insert_at=args.insert_at, weights=args.weights, bn_momentum=args.bn_momentum,
        freeze_bn=args.freeze_bn,
        image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, lr=args.lr, lr_multiplier=args.lr_multiplier,
        lr_decay_epochs=args.lr_decay_epochs, lr_decay_rate=args.lr_decay_rate,
        momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay,
        seed=args.seed, output_dir=args.output_dir, run_name=args.run_name,
        strategy=args.strategy, devices=args.devices, mixed_precision=args.mixed_precision,
        jit=args.jit, evaluate=not args.no_eval, cam_curve_interval=args.cam_curve_interval,
        eval_batch_size=args.eval_batch_size, export=not args.no_export,
        export_dir=args.export_dir, export_version=args.export_version,
    )


def _join_processes(args, setup_error):
    from keras_dgdm.train import processes as distributed

    try:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except ValueError as e:
        raise setup_error(str(e)) from e


def main(argv=None):
    """Parses ``argv``, trains, prints the metrics table. A user's error (bad flags, data or
    paths, no network for downloads) exits 2 with one message; ``--debug`` shows the traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = cli_support.start(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    from keras_dgdm import evaluation, training

    with cli_support.user_errors("fit.py", (training.SetupError, OSError), debug or args.debug,
                                 interrupted="; rerun the same command to resume"):
        # Logical CPU devices must exist before TensorFlow initialises its devices, and the
        # processes of a multi-process run must connect before JAX computes anything.
        training.configure_cpu_devices(args.devices)
        if args.num_processes != 1:
            _join_processes(args, training.SetupError)
        result = training.train(config_from_args(args),
                                verbose=cli_support.fit_verbosity(args.quiet))
    print(f"\nrun directory: {result['run_dir']} ({result['epochs_done']} epochs)")
    if result.get("train_accuracy") is not None:
        print(f"last epoch: train accuracy {100 * result['train_accuracy']:.2f} %, "
              f"val accuracy {100 * (result.get('val_accuracy') or 0):.2f} %")
    if result["metrics"] is not None:
        print(evaluation.format_metrics_table(
            result["metrics"], title=f"test metrics (CAM threshold {result['cam_threshold']:.2f}"
                                     " chosen on val):", at_fixed=True))
        print(f"figure: {os.path.join(result['run_dir'], 'eval', 'test', evaluation.FIGURE_NAME)}")
    if result.get("drop_stats"):
        from keras_dgdm.diagnostics import format_drop_statistics

        print("what the method layers erase (first test images, "
              f"{os.path.join('eval', 'test', evaluation.DROP_STATS_NAME)}):")
        print(format_drop_statistics(result["drop_stats"]))
    if result["export_path"]:
        print(f"exported: {result['export_path']}")
    return result


if __name__ == "__main__":
    main()
