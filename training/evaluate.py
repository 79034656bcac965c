#!/usr/bin/env python
"""Evaluate a trained WSOL model: every metric -> metrics.json, heatmap figure.

    python training/evaluate.py runs/synthetic-small_vgg-dgdm-64px-seed0 --split test
    python training/evaluate.py model.keras --dataset cub --data-dir ~/data --split test
    python training/evaluate.py saved_models/NAME --dataset synthetic --split val

MODEL is a run directory (its config.json gives the dataset, data options and image size), a
.keras file, a SavedModel directory or a TF Serving base directory (latest version). Needs the
package installed (pip install -e .).
"""
import argparse
import json
import os
import sys

import cli_support  # training/ (this script's folder): standard library only


def build_parser():
    """The evaluate.py argument parser."""
    from keras_dgdm.data.options import key_value  # after cli_support.start: loads Keras

    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="run directory, .keras file or SavedModel directory")
    p.add_argument("--dataset", default=None, help="default: the run's dataset")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--data-option", type=key_value, action="append", default=None,
                   metavar="KEY=VALUE", help="default: the run's data options")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--image-size", type=int, default=None, help="default: the model's input")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cam-threshold", type=float, default=None,
                   help="threshold of the *_at_fixed metrics and the figure (default: the run's "
                        "val-chosen cam_threshold, else the split's best)")
    p.add_argument("--cam-curve-interval", type=float, default=0.01)
    p.add_argument("--num-figure-examples", type=int, default=8)
    p.add_argument("--output-dir", default=None,
                   help="default: RUN_DIR/eval/SPLIT, or MODEL_eval_SPLIT next to the model")
    p.add_argument("--debug", action="store_true", help=cli_support.DEBUG_HELP)
    return p


def main(argv=None):
    """Parses ``argv``, evaluates, prints the table; returns the metrics dict. A user's error
    exits 2 with one message; ``--debug`` shows the traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = cli_support.start(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    from keras_dgdm import data as wsol_data
    from keras_dgdm import evaluation

    with cli_support.user_errors("evaluate.py", (ValueError, OSError), debug or args.debug):
        model, run = evaluation.load_model(args.model)
        run_cfg = run.get("config", {})
        dataset = args.dataset or run_cfg.get("dataset")
        if dataset is None:
            raise ValueError("--dataset is required when MODEL is not a run directory "
                             f"(choose one of: {', '.join(wsol_data.DATASETS)}).")
        options = dict(args.data_option) if args.data_option is not None else dict(
            run_cfg.get("data_options", {}) if dataset == run_cfg.get("dataset") else {})
        data_dir = args.data_dir or (run_cfg.get("data_dir") if dataset == run_cfg.get("dataset")
                                     else None)
        image_size = args.image_size or evaluation.model_input_size(model)[0]
        threshold = args.cam_threshold
        metrics_path = os.path.join(args.model, "metrics.json")
        if threshold is None and run and os.path.exists(metrics_path):
            with open(metrics_path, encoding="utf-8") as f:
                threshold = json.load(f).get("cam_threshold")
        if args.output_dir:
            out = args.output_dir
        elif run:
            out = os.path.join(args.model, "eval", args.split)
        else:
            out = os.path.normpath(args.model).rstrip(os.sep) + f"_eval_{args.split}"
        data = wsol_data.load(dataset, args.split, data_dir=data_dir, **options)
        metrics = evaluation.evaluate_split(
            model, data, image_size, args.batch_size, out, split=args.split,
            cam_curve_interval=args.cam_curve_interval, cam_threshold=threshold,
            num_figure_examples=args.num_figure_examples)
    print(evaluation.format_metrics_table(metrics, title=f"{dataset} {args.split}:",
                                          at_fixed=threshold is not None))
    print(f"metrics: {os.path.join(out, evaluation.METRICS_NAME)}")
    print(f"figure: {os.path.join(out, evaluation.FIGURE_NAME)}")
    return metrics


if __name__ == "__main__":
    main()
