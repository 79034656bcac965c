"""Throughput of box extraction + IoU for the evaluator: the cv2 reference rules vs ours.

Prints one figure per line: CAMs/s of the reference (cv2, benchmarks/reference_evaluator.py)
and of keras_dgdm.localization.best_iou_curve, single- and multi-contour, on a fixed seeded
set of realistic synthetic CAMs (224x224, 100 CAM thresholds), then the max |difference| of
the resulting box_accuracy_curve values (0 means identical numbers).

    python benchmarks/bench_evaluator.py [--num 200] [--size 224] [--repeats 3]

Timings are the best of ``--repeats`` runs of process CPU time (the machine may be shared);
``--wall`` uses wall-clock time instead.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.reference_evaluator import (  # noqa: E402
    realistic_cams,
    reference_best_iou_curve,
)
from keras_dgdm.localization import best_iou_curve, cam_thresholds  # noqa: E402


def _rate(fn, cams, gts, repeats, clock):
    best = float("inf")
    curves = None
    for _ in range(repeats):
        start = clock()
        curves = [fn(c, g) for c, g in zip(cams, gts)]
        best = min(best, clock() - start)
    return len(cams) / best, np.stack(curves)


def _accuracy(curves, iou_thresholds=(0.3, 0.5, 0.7)):
    return np.stack([(curves >= t).mean(axis=0) * 100.0 for t in iou_thresholds])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=200, help="number of CAMs")
    p.add_argument("--size", type=int, default=224, help="CAM height and width")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    args = p.parse_args(argv)
    clock = time.perf_counter if args.wall else time.process_time
    cams, gts = realistic_cams(args.num, size=args.size, seed=args.seed)
    t = cam_thresholds(0.01)
    for multi in (False, True):  # compile / warm up
        best_iou_curve(cams[0], gts[0], t, multi)
    mode_name = {False: "single-contour", True: "multi-contour"}
    print(f"# {args.num} CAMs {args.size}x{args.size}, {len(t)} thresholds, "
          f"{'wall' if args.wall else 'CPU'} time, best of {args.repeats}")
    for multi in (False, True):
        ref_rate, ref_curves = _rate(
            lambda c, g: reference_best_iou_curve(c, g, t, multi), cams, gts, 1, clock)
        our_rate, our_curves = _rate(
            lambda c, g: best_iou_curve(c, g, t, multi), cams, gts, args.repeats, clock)
        diff = np.abs(_accuracy(ref_curves) - _accuracy(our_curves)).max()
        iou_diff = np.abs(ref_curves - our_curves).max()
        name = mode_name[multi]
        print(f"reference (cv2) {name}: {ref_rate:.1f} CAMs/s")
        print(f"keras_dgdm {name}: {our_rate:.1f} CAMs/s")
        print(f"speed-up {name}: {our_rate / ref_rate:.1f}x")
        print(f"max |box_accuracy_curve difference| {name}: {diff:g}")
        print(f"max |best IoU difference| {name}: {iou_diff:g}")


if __name__ == "__main__":
    main()
