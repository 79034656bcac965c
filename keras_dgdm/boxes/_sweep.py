"""The box search of ``keras_dgdm.boxes.search``, in numba.

its in-graph twin for the SavedModel). A uint8 map has at most 256 levels and the components
at a lower level are unions of those at higher ones, so one union-find sweep over the pixels in
decreasing value order builds the foreground components of every level, and one over the
background in increasing value order builds the holes (multi-contour mode). One counting sort
serves both, with each pixel's neighbour mask at its turn (``_sort_pixels``); both sweeps are
the same routine (``_sweep``) with the same merge (``_merge``). Each component keeps its pixel
box, first pixel, pixel count, hole-free contour area and Euler number, updated in O(1) per
pixel from one table lookup on the mask. The area is local: a 2x2 window whose 4 pixels are in
the component adds 1, one with 3 pixels adds 1/2, anything else 0 (the shoelace area of cv2's
contour; e.g. a 3x3 square -> 4, a line -> 0). Holes only add area, so a component with holes
(Euler number < 1) has bounds, and its exact area is measured by following its outer border
as cv2 does (``_outer_area2``), only when the bounds cannot decide the largest contour.

IoUs with the GT boxes are taken inside the sweeps, once per component and change. In
multi-contour mode a hole's box lies inside its component's box, so the hole sweep only runs
up to the last level where some component with holes covers a GT box better than the best box
does, and only switches on the pixels inside those components' boxes.
``tests/test_boxes_search.py`` checks the boxes and IoUs against the cv2 rules
(``benchmarks/reference_evaluator.py``).
"""
from __future__ import annotations

import numba
import numpy as np

from keras_dgdm.boxes._components import (
    _AREA2, _CACHED, _CHANGED, _COUNT, _EULER4, _FILLED2, _FIRST, _LIVEPOS, _NCOL, _U, _X0, _X1,
    _Y0, _Y1, _emit, _iou, _largest, _merge, _quantize, _sort_pixels)
from keras_dgdm.boxes._tables import _TABLE4, _TABLE8


@numba.njit(cache=True)
def _sweep(h, w, order, masks, bounds, foreground, multi, gt, exact, emit, need, regions,
           floor, table):
    """One union-find sweep (``_sort_pixels`` gives ``order`` and ``masks``); a snapshot at
    every level where ``need`` is set.

    Foreground: the pixels are switched on from the end of ``order`` (decreasing value);
    after level ``li`` the pixels ``order[bounds[li]:]`` are on. Background: from the start;
    of ``order[:bounds[li]]`` those inside ``regions[li]`` (x0, y0, x1, y1; the regions
    shrink from level to level) are on, and the snapshots look at the holes: the components
    whose box lies strictly inside the region (all their neighbours are then on or
    foreground, and none is on the image border).

    ``floor[li]``: an IoU already reached at level ``li`` (the holes' sweep gets the
    components' best); boxes too small to beat it are skipped.

    Returns (best, hole_regions, boxes, counts):

    * ``best[li]``: the best IoU of the level's boxes with ``gt`` and ``floor`` (-1 without
      ``gt`` or box);
    * ``hole_regions[li]`` (multi-contour foreground with ``gt``): the union of the pixel
      boxes of the components whose holes could beat ``best`` (x0 > x1 where none could).
      ``exact``: the GT boxes have integer corners, so IoUs are ratios of exact integers;
    * with ``emit``, the boxes of every level, level after level, ``counts[li]`` of them.
    """
    pw = w + 2
    offs = np.array([-pw - 1, -pw, -pw + 1, 1, pw + 1, pw, pw - 1, -1], np.int64)
    n = h * w
    lab = np.full((h + 2) * pw, -1, np.int32)  # component id of a pixel that is on
    parent = np.empty(n, np.int32)
    at = np.empty((n, _NCOL), np.int32)
    live = np.empty(n, np.int32)
    val = np.empty((n, 5), np.float64)  # cached ``_iou`` of a component's box
    nlev = bounds.shape[0]
    best = np.full(nlev, -1.0)
    gt_area = np.inf  # the smallest GT box
    for g in range(gt.shape[0]):
        gt_area = min(gt_area, (gt[g, 2] - gt[g, 0] + 1.0) * (gt[g, 3] - gt[g, 1] + 1.0))
    hole_regions = np.empty((nlev, 4), np.int64)
    hole_regions[:, :2] = max(h, w)  # empty
    hole_regions[:, 2:] = -1
    counts = np.zeros(nlev, np.int64)
    boxes = np.zeros((max(nlev, 16) if emit else 0, 4), np.int64)
    nbox = 0
    stop = -1
    for li in range(nlev):
        if need[li]:
            stop = li
    nlive = 0
    nid = 0
    ptr = n - 1 if foreground else 0
    step = -1 if foreground else 1
    for li in range(stop + 1):
        end = bounds[li] - 1 if foreground else bounds[li]
        rx0, ry0, rx1, ry1 = regions[li, 0], regions[li, 1], regions[li, 2], regions[li, 3]
        while ptr != end:
            # (indices go through _U: numba checks signed ones for negative values)
            v = np.int64(order[_U(ptr)])
            mask = np.int64(masks[_U(ptr)])
            ptr += step
            r = v >> 16
            c = v & 0xFFFF
            p = (r + 1) * pw + c + 1
            if not foreground:
                if r < ry0 or r > ry1 or c < rx0 or c > rx1:
                    continue
                if r == ry0 or r == ry1 or c == rx0 or c == rx1:
                    mask = 0  # some neighbours may be outside the regions: look
                    for k in range(8):
                        if lab[_U(p + offs[k])] >= 0:
                            mask |= 1 << k
                else:  # the neighbours before it (all inside the regions so far)
                    mask = ~mask & 0xFF
            t = table[_U(mask)]
            n_groups = t & 7
            if n_groups == 0:  # a new component
                root = nid
                nid += 1
                parent[_U(root)] = root
                at[_U(root), _X0] = c
                at[_U(root), _Y0] = r
                at[_U(root), _X1] = c
                at[_U(root), _Y1] = r
                at[_U(root), _FIRST] = p
                at[_U(root), _COUNT] = 0
                at[_U(root), _AREA2] = 0
                at[_U(root), _EULER4] = 0
                at[_U(root), _FILLED2] = 0
                at[_U(root), _LIVEPOS] = nlive
                at[_U(root), _CACHED] = -1
                live[_U(nlive)] = root
                nlive += 1
            else:  # join the components of the neighbour groups (find: path halving)
                root = np.int64(lab[_U(p + offs[_U((t >> 3) & 7)])])
                while parent[_U(root)] != root:
                    parent[_U(root)] = parent[_U(parent[_U(root)])]
                    root = np.int64(parent[_U(root)])
                for k in range(1, n_groups):
                    rb = np.int64(lab[_U(p + offs[_U((t >> (3 + 3 * k)) & 7)])])
                    while parent[_U(rb)] != rb:
                        parent[_U(rb)] = parent[_U(parent[_U(rb)])]
                        rb = np.int64(parent[_U(rb)])
                    if rb != root:
                        root, nlive = _merge(parent, at, live, nlive, root, rb)
                if c < at[_U(root), _X0]:  # (if, not min(): the operands are int32 and int64)
                    at[_U(root), _X0] = c
                if r < at[_U(root), _Y0]:
                    at[_U(root), _Y0] = r
                if c > at[_U(root), _X1]:
                    at[_U(root), _X1] = c
                if r > at[_U(root), _Y1]:
                    at[_U(root), _Y1] = r
                if p < at[_U(root), _FIRST]:
                    at[_U(root), _FIRST] = p
            lab[_U(p)] = root
            at[_U(root), _COUNT] += 1
            at[_U(root), _AREA2] += ((t >> 16) & 0xFF) - 128
            at[_U(root), _EULER4] += ((t >> 24) & 0xFF) - 128
            at[_U(root), _CHANGED] = li
        if not need[li]:
            continue
        # ---- snapshot ----
        if foreground and (nlive == 0 or not multi):
            if nlive == 0:
                x0 = y0 = x1 = y1 = 0
            else:
                rt = _largest(lab, at, live, nlive, pw, li)
                x0 = at[_U(rt), _X0]
                y0 = at[_U(rt), _Y0]
                x1 = min(at[_U(rt), _X1] + 1, w - 1)
                y1 = min(at[_U(rt), _Y1] + 1, h - 1)
            if gt.shape[0]:
                best[li] = _iou(x0, y0, x1, y1, gt)[0]
            if emit:
                boxes = _emit(boxes, nbox, x0, y0, x1, y1)
                nbox += 1
                counts[li] = 1
            continue
        best_i = 0.0  # (intersection, union) of the best IoU, exact with ``exact``
        best_u = 1.0
        best[li] = floor[li]
        for k in range(nlive):
            rt = live[_U(k)]
            if foreground:
                x0 = at[_U(rt), _X0]
                y0 = at[_U(rt), _Y0]
                x1 = min(at[_U(rt), _X1] + 1, w - 1)
                y1 = min(at[_U(rt), _Y1] + 1, h - 1)
            elif (at[_U(rt), _X0] > rx0 and at[_U(rt), _X1] < rx1 and at[_U(rt), _Y0] > ry0
                  and at[_U(rt), _Y1] < ry1):  # a hole
                x0 = at[_U(rt), _X0] - 1
                y0 = at[_U(rt), _Y0] - 1
                x1 = min(at[_U(rt), _X1] + 2, w - 1)
                y1 = min(at[_U(rt), _Y1] + 2, h - 1)
            else:
                continue
            if gt.shape[0]:
                if at[_U(rt), _CACHED] < at[_U(rt), _CHANGED]:
                    # IoU and cover are at most |box| / |GT box|: skip the small boxes
                    if (x1 - x0 + 1.0) * (y1 - y0 + 1.0) < best[li] * gt_area * (1.0 - 1e-9):
                        continue
                    vals = _iou(x0, y0, x1, y1, gt)
                    for j in range(5):
                        val[_U(rt), j] = vals[j]
                    at[_U(rt), _CACHED] = li
                best[li] = max(best[li], val[_U(rt), 0])
                if val[_U(rt), 1] * best_u > best_i * val[_U(rt), 2]:
                    best_i = val[_U(rt), 1]
                    best_u = val[_U(rt), 2]
            if emit:
                boxes = _emit(boxes, nbox, x0, y0, x1, y1)
                nbox += 1
                counts[li] += 1
        if foreground and gt.shape[0]:
            # A hole's box lies inside its component's box B, so its IoU with a GT box G is
            # at most |B & G| / |G| (the cover). With integer GT corners both are ratios of
            # exact integers and a cover <= the best IoU rules the holes out exactly (the
            # float IoUs are correctly rounded, so they keep the order); otherwise a margin
            # absorbs rounding.
            for k in range(nlive):
                rt = live[_U(k)]
                if at[_U(rt), _EULER4] == 4 or at[_U(rt), _CACHED] < at[_U(rt), _CHANGED]:
                    continue  # no hole, or skipped above
                if (val[_U(rt), 3] * best_u > best_i * val[_U(rt), 4] if exact
                        else val[_U(rt), 3] / val[_U(rt), 4] >= best[li] - 1e-9):
                    hole_regions[li, 0] = min(hole_regions[li, 0], at[_U(rt), _X0])
                    hole_regions[li, 1] = min(hole_regions[li, 1], at[_U(rt), _Y0])
                    hole_regions[li, 2] = max(hole_regions[li, 2], at[_U(rt), _X1])
                    hole_regions[li, 3] = max(hole_regions[li, 3], at[_U(rt), _Y1])
    return best, hole_regions, boxes[:nbox], counts



@numba.njit(cache=True)
def _search(cam, thresholds, multi, gt, exact, emit):
    """The whole box search of one CAM: quantise, level list, sort, the foreground sweep and,
    in multi-contour mode, the hole sweep.

    Returns (ok, curve, inverse, boxes, counts, hole_boxes, hole_counts): ``ok`` False for a
    CAM with values outside [0, 1]; ``curve[i]`` the best IoU at threshold ``i`` (with
    ``gt``); ``inverse[i]`` the index of its level among the distinct levels in increasing
    order; with ``emit``, the boxes of each level (``_sweep``'s output; foreground in
    decreasing, holes in increasing level order).
    """
    h, w = cam.shape
    qp, cum, ok = _quantize(cam)
    qmax = 0
    for v in range(256):
        if cum[v + 1] > cum[v]:
            qmax = v
    nt = thresholds.shape[0]
    slot = np.full(257, -1, np.int64)
    levels = np.empty(nt, np.int64)
    for i in range(nt):
        levels[i] = np.int64(np.floor(thresholds[i] * float(qmax)))  # int(t * q.max())
        slot[levels[i]] = 0
    uniq = np.empty(nt, np.int64)
    nlev = 0
    for v in range(257):
        if slot[v] == 0:
            slot[v] = nlev
            uniq[nlev] = v
            nlev += 1
    uniq = uniq[:nlev]
    inverse = np.empty(nt, np.int64)
    for i in range(nt):
        inverse[i] = slot[levels[i]]
    order, masks = _sort_pixels(qp, cum)
    bounds = cum[uniq + 1]  # pixels <= level
    everywhere = np.empty((nlev, 4), np.int64)
    everywhere[:, 0] = 0
    everywhere[:, 1] = 0
    everywhere[:, 2] = w - 1
    everywhere[:, 3] = h - 1
    all_levels = np.ones(nlev, np.bool_)
    best, regions, boxes, counts = _sweep(h, w, order, masks, bounds[::-1].copy(), True, multi,
                                          gt, exact, emit, all_levels, everywhere,
                                          np.full(nlev, -1.0), _TABLE8)
    best = best[::-1].copy()
    hole_boxes = np.zeros((0, 4), np.int64)
    hole_counts = np.zeros(nlev, np.int64)
    if multi:
        # Without GT boxes every hole is wanted. With them, only the holes inside components
        # whose holes could beat the level's best box (the foreground sweep gives the union
        # of their pixel boxes per level); the hole sweep switches on the pixels inside the
        # union over the needed levels from there up, which shrinks as the level rises.
        need = all_levels
        if not emit:
            need = np.zeros(nlev, np.bool_)
            acc = np.array([w, h, -1, -1], np.int64)
            for li in range(nlev):  # regions: decreasing level order -> increasing, unions
                lr = nlev - 1 - li
                need[lr] = regions[li, 0] <= regions[li, 2]
                acc[0] = min(acc[0], regions[li, 0])
                acc[1] = min(acc[1], regions[li, 1])
                acc[2] = max(acc[2], regions[li, 2])
                acc[3] = max(acc[3], regions[li, 3])
                everywhere[lr] = acc
        if need.any():
            hole_best, _, hole_boxes, hole_counts = _sweep(
                h, w, order, masks, bounds, False, True, gt, exact, emit, need, everywhere, best,
                _TABLE4)
            for li in range(nlev):
                best[li] = max(best[li], hole_best[li])
    curve = np.empty(nt, np.float64)
    for i in range(nt):
        curve[i] = best[inverse[i]]
    return ok, curve, inverse, boxes, counts, hole_boxes, hole_counts


@numba.njit(cache=True)
def _search_batch(cams, thresholds, multi, gts, offsets, exact):
    """``_search`` of every CAM of an (N, H, W) batch, CAM ``i`` against the GT boxes
    ``gts[offsets[i]:offsets[i + 1]]``; returns (curves, bad): the (N, T) best IoUs, and the
    index of the first CAM with values outside [0, 1] (-1: none)."""
    curves = np.empty((cams.shape[0], thresholds.shape[0]))
    for i in range(cams.shape[0]):
        out = _search(cams[i], thresholds, multi, gts[offsets[i]:offsets[i + 1]], exact[i],
                      False)
        if not out[0]:
            return curves, i
        curves[i] = out[1]
    return curves, -1

