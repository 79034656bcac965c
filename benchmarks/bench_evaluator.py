"""Box search speed: ``keras_dgdm.metrics.box_accuracy_curve`` against the cv2 reference rules.

Times ``box_accuracy_curve`` and ``benchmarks.reference_evaluator.reference_box_accuracy_curve``
(the reference's cv2 loop: threshold, findContours, boundingRect, per CAM threshold) on the
same CAMs, 100 CAM thresholds (interval 0.01), in both modes (single contour: MaxBoxAcc;
multi contour: MaxBoxAccV2), on two seeded CAM families of ``--num`` maps each:

* random smoothed: uniform noise, Gaussian-smoothed with standard deviation ``--sigma``
  pixels (``reference_evaluator.smoothed_random_cams``), one random GT box each;
* realistic: blob mixtures with noise and bicubic-upsampled 14x14 random maps
  (``reference_evaluator.realistic_cams``).

Both run in one process, in alternating chunks of ``--chunk`` CAMs, so that load on a shared
machine hits both; each figure is the best of ``--repeats`` passes of process CPU time
(``--wall``: wall-clock time). Every chunk's accuracy curves must be identical (the script
fails otherwise); the max |difference| printed is over the whole set.

    python benchmarks/bench_evaluator.py [--num 300] [--size 224] [--sigma 2] [--repeats 3]

``--agreement N`` instead counts, on N small adversarial maps (uniform noise, few-level maps
with ties, holes and islands, binary maps, smoothed noise, blocky maps) at 100 thresholds in
both modes, the box sets of ``keras_dgdm.boxes.boxes_at_thresholds`` that differ from
the reference's, and the best-IoU curves that differ (integer and fractional GT boxes).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from keras_dgdm.boxes import best_iou_curve, boxes_at_thresholds, cam_thresholds
from keras_dgdm.metrics import box_accuracy_curve
from reference_evaluator import (  # benchmarks/ (this script's folder)
    realistic_cams,
    reference_best_iou_curve,
    reference_box_accuracy_curve,
    reference_boxes,
    smoothed_random_cams,
)

IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def _families(args):
    return {
        f"random smoothed (sigma {args.sigma:g})":
            smoothed_random_cams(args.num, size=args.size, seed=args.seed, sigma=args.sigma),
        "realistic": realistic_cams(args.num, size=args.size, seed=args.seed),
    }


def _measure(cams, gts, t, multi, args, clock):
    """Best-of-repeats seconds (reference, ours) over the whole set, chunks alternating."""
    chunks = [slice(i, i + args.chunk) for i in range(0, len(cams), args.chunk)]
    best_ref = best_ours = float("inf")
    for rep in range(args.repeats):
        ref_s = ours_s = 0.0
        for k, sl in enumerate(chunks):
            order = ("ref", "ours") if (rep + k) % 2 == 0 else ("ours", "ref")
            for who in order:
                start = clock()
                if who == "ref":
                    want = reference_box_accuracy_curve(cams[sl], gts[sl], t, IOU_THRESHOLDS,
                                                        multi_contour=multi)
                    ref_s += clock() - start
                else:
                    got = box_accuracy_curve(cams[sl], gts[sl], t, IOU_THRESHOLDS,
                                             multi_contour=multi)
                    ours_s += clock() - start
            if not np.array_equal(want, got):
                raise SystemExit(f"box_accuracy_curve differs from the reference on CAMs {sl}")
        best_ref = min(best_ref, ref_s)
        best_ours = min(best_ours, ours_s)
    return best_ref, best_ours


def _adversarial_map(rng, i):
    h, w = rng.integers(2, 40, 2)
    kind = i % 5
    if kind == 0:
        return rng.random((h, w))
    if kind == 1:
        return rng.integers(0, 3, (h, w)) / 2.0
    if kind == 2:
        return (rng.random((h, w)) < rng.uniform(0.3, 0.7)).astype(float)
    if kind == 3:
        cam = np.cumsum(np.cumsum(rng.normal(size=(h, w)), 0), 1)
        return (cam - cam.min()) / max(np.ptp(cam), 1e-12)
    return np.kron(rng.random((max(h // 3, 1), max(w // 3, 1))), np.ones((3, 3)))


def agreement(num, seed):
    """(differing box sets, pairs, differing IoU curves, curves) on ``num`` adversarial maps."""
    rng = np.random.default_rng(seed)
    t = cam_thresholds(0.01)
    differ = pairs = curves_differ = curves = 0
    for i in range(num):
        cam = _adversarial_map(rng, i)
        h, w = cam.shape
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        gts = [[[x0, y0, rng.integers(x0, w), rng.integers(y0, h)]],
               [[x0 * 0.3, y0 * 0.6, w - 0.7, h - 1.1], [1, 1, 2.5, 3]]]
        for multi in (False, True):
            ours = boxes_at_thresholds(cam, t, multi)
            theirs = reference_boxes(cam, t, multi)
            for a, b in zip(ours, theirs):
                differ += sorted(map(tuple, a.tolist())) != sorted(map(tuple, b.tolist()))
            pairs += len(t)
            for gt in gts:
                curves_differ += not np.array_equal(best_iou_curve(cam, gt, t, multi),
                                                    reference_best_iou_curve(cam, gt, t, multi))
                curves += 1
    return differ, pairs, curves_differ, curves


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=300, help="CAMs per family")
    p.add_argument("--size", type=int, default=224, help="CAM height and width")
    p.add_argument("--sigma", type=float, default=2.0,
                   help="Gaussian smoothing of the random family, pixels")
    p.add_argument("--repeats", type=int, default=3, help="timing passes (best is kept)")
    p.add_argument("--chunk", type=int, default=25, help="CAMs per alternating chunk")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    p.add_argument("--smoke", action="store_true", help="a few small CAMs, one pass")
    p.add_argument("--agreement", type=int, default=0, metavar="N",
                   help="count disagreements on N adversarial maps instead of timing")
    args = p.parse_args(argv)
    if args.agreement:
        differ, pairs, curves_differ, curves = agreement(args.agreement, args.seed)
        print(f"{differ} of {pairs} (map, threshold, mode) box sets differ from the reference; "
              f"{curves_differ} of {curves} best-IoU curves differ")
        return
    if args.smoke:
        args.num, args.size, args.repeats, args.chunk = 6, 64, 1, 3
    clock = time.perf_counter if args.wall else time.process_time
    t = cam_thresholds(0.01)
    families = _families(args)
    for cams, gts in families.values():  # compile / warm up
        for multi in (False, True):
            box_accuracy_curve(cams[:1], gts[:1], t, multi_contour=multi)
    print(f"# {args.num} CAMs per family, {args.size}x{args.size}, {len(t)} CAM thresholds, "
          f"{'wall' if args.wall else 'CPU'} time, best of {args.repeats}, chunks of "
          f"{args.chunk} alternating")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("family | mode | reference CAMs/s | keras_dgdm CAMs/s | speed-up | max |difference|")
    for name, (cams, gts) in families.items():
        for multi in (False, True):
            ref_s, ours_s = _measure(cams, gts, t, multi, args, clock)
            want = reference_box_accuracy_curve(cams, gts, t, IOU_THRESHOLDS, multi_contour=multi)
            got = box_accuracy_curve(cams, gts, t, IOU_THRESHOLDS, multi_contour=multi)
            mode = "multi contour" if multi else "single contour"
            print(f"{name} | {mode} | {len(cams) / ref_s:.1f} | {len(cams) / ours_s:.1f} | "
                  f"{ref_s / ours_s:.1f}x | {np.abs(want - got).max():g}", flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
