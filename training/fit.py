#!/usr/bin/env python
"""Train, evaluate and export a WSOL model.

    python training/fit.py                      # DGDM on the synthetic benchmark (its recipe)
    python training/fit.py --dataset cub --data-dir ~/data --backbone vgg16 --method dgdm
    python training/fit.py --dataset synthetic --method adl --drop-rate 0.5 --epochs 4
    python training/fit.py --config runs/NAME/config.json   # rerun (resume) a run

Every flag but the process ones is a field of keras_dgdm.train.TrainConfig (the flags are
generated from the fields: keras_dgdm.train.flags); left out, it takes the dataset's recipe
(keras_dgdm.train.RECIPES) or the field's default. Rerunning the same command resumes the run
in OUTPUT_DIR/RUN_NAME from its last finished epoch. Needs the package installed
(pip install -e .).
"""
import argparse
import os
import sys

import cli_support  # training/ (this script's folder): standard library only


def build_parser():
    """The fit.py argument parser: the TrainConfig flags and the process flags."""
    from keras_dgdm.train.flags import add_config_flags  # after cli_support.start: loads Keras

    p = argparse.ArgumentParser(prog="fit.py", description=__doc__.split("\n\n")[0])
    add_config_flags(p)
    r = p.add_argument_group("processes and output")
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
    r.add_argument("--quiet", action="store_true",
                   help="no progress output (default: a progress bar on a terminal, one line "
                        "per epoch otherwise)")
    r.add_argument("--debug", action="store_true", help=cli_support.DEBUG_HELP)
    return p


def main(argv=None):
    """Parses ``argv``, trains, prints the metrics table. A user's error (bad flags, data or
    paths, no network for downloads) exits 2 with one message; ``--debug`` shows the traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = cli_support.start(argv)
    args = build_parser().parse_args(argv)
    from keras_dgdm import evaluation
    from keras_dgdm.diagnostics import format_drop_statistics
    from keras_dgdm.train import distribution, loop, processes
    from keras_dgdm.train.flags import config_from_flags

    with cli_support.user_errors("fit.py", (loop.SetupError, OSError), debug or args.debug,
                                 interrupted="; rerun the same command to resume"):
        try:
            config = config_from_flags(args)
            # Logical CPU devices must exist before TensorFlow initialises its devices, and the
            # processes of a multi-process run must connect before JAX computes anything.
            distribution.configure_cpu_devices(config.devices)
            if args.num_processes != 1:
                processes.initialize(args.coordinator, args.num_processes, args.process_id)
        except ValueError as e:
            raise loop.SetupError(str(e)) from e
        result = loop.train(config, verbose=cli_support.fit_verbosity(args.quiet))
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
        print("what the method layers erase (first test images, "
              f"{os.path.join('eval', 'test', evaluation.DROP_STATS_NAME)}):")
        print(format_drop_statistics(result["drop_stats"]))
    if result["export_path"]:
        print(f"exported: {result['export_path']}")
    return result


if __name__ == "__main__":
    main()
