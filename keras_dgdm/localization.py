"""Boxes from class activation maps, with the reference evaluator's conventions.

The conventions (defined here once; ``keras_dgdm.metrics`` and the serving export use them):

* A CAM (score map) is an (H, W) float array in [0, 1] (min-max normalised per image).
* Quantisation: ``q = (cam * 255).astype(uint8)``, computed in float64 (``quantize_cam``).
* CAM thresholds: ``np.arange(0, 1, interval)`` (``cam_thresholds``). At threshold ``t`` the
  integer level is ``int(t * q.max())`` and the foreground is ``q > level`` (strict, like
  ``cv2.threshold(THRESH_BINARY)``).
* Connected components of the foreground are 8-connected (holes are 4-connected background
  regions that do not reach the image border), as in ``cv2.findContours``.
* No foreground pixel -> the single box ``(0, 0, 0, 0)``.
* Box of a contour: ``cv2.boundingRect`` ``(x, y, w, h)`` -> ``(x, y, x + w, y + h)`` with
  ``x1 = min(x + w, W - 1)``, ``y1 = min(y + h, H - 1)``. So ``x1`` is one column *past* the last
  foreground column unless the component touches the right border. This quirk is kept on
  purpose: the published MaxBoxAcc numbers use it.
* Single-contour mode keeps the contour of largest ``cv2.contourArea``: the area of the
  polygon through the centres of the component's outer boundary pixels (holes included), not
  the pixel count. Equal areas are broken the way ``cv2.findContours`` orders its output: the
  component discovered last in raster order (largest index of its first pixel) wins.
* Multi-contour mode keeps every contour ``cv2.findContours(RETR_TREE)`` returns: the outer
  contour of every component and the contour around every hole (its box is the hole's pixel
  box grown by one pixel on each side, then the same ``x + w`` rule).

How it is computed (the box search lives in this module only; ``keras_dgdm.graph_boxes`` is
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
``tests/test_localization.py`` checks the boxes and IoUs against the cv2 rules
(``benchmarks/reference_evaluator.py``).
"""
from __future__ import annotations

import numba
import numpy as np

from keras_dgdm.boxes import validate_boxes

__all__ = [
    "quantize_cam",
    "cam_thresholds",
    "boxes_at_thresholds",
    "box_from_cam",
    "best_iou_curve",
    "best_iou_curves",
    "validate_cam",
]


def cam_thresholds(interval=0.01):
    """The CAM threshold list ``np.arange(0, 1, interval)`` (the reference's definition).

    Args:
        interval: spacing of the thresholds, in (0, 1).

    Returns:
        A float64 array; ``cam_thresholds(0.25)`` is ``[0, 0.25, 0.5, 0.75]``.
    """
    interval = float(interval)
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval (cam_curve_interval) must be in (0, 1); got {interval}.")
    return np.arange(0, 1, interval)


def validate_cam(cam, name="cam"):
    """Checks that ``cam`` is a finite (H, W) array with values in [0, 1]; returns it as float64.

    Raises:
        ValueError naming ``name`` for a wrong rank, an empty map, NaN/inf or values outside
        [0, 1].
    """
    arr = np.asarray(cam)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) score map; got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    arr = arr.astype(np.float64, copy=False)
    lo, hi = arr.min(), arr.max()  # NaN propagates into both
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"{name} contains NaN.")
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(
            f"{name} must have values in [0, 1] (min-max normalised); got min {lo}, max {hi}."
        )
    return arr


def quantize_cam(cam):
    """Quantises a CAM to uint8 as the reference does: ``(cam * 255).astype(uint8)`` in float64.

    Args:
        cam: (H, W) float array in [0, 1] (float32 inputs are widened to float64 first, as
            the reference does).

    Returns:
        (H, W) uint8 array.

    Example:
        >>> quantize_cam(np.array([[0.0, 0.5, 1.0]])).tolist()
        [[0, 127, 255]]
    """
    return (validate_cam(cam) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# lookup tables, indexed by the 8-neighbourhood mask of a pixel being switched on
# ----------------------------------------------------------------------------------------------


# Neighbour order of the masks: bit 0 NW, 1 N, 2 NE, 3 E, 4 SE, 5 S, 6 SW, 7 W.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _window_area2_euler(bits):
    """(2 x contour area, 4 x Euler number) contribution of one 2x2 window (Gray's bit quads).

    bits: 4-tuple of 0/1 (top-left, top-right, bottom-left, bottom-right).
    """
    n = sum(bits)
    if n == 4:
        return 2, 0
    if n == 3:
        return 1, -1
    if n == 1:
        return 0, 1
    if n == 2 and bits in ((1, 0, 0, 1), (0, 1, 1, 0)):
        return 0, -2
    return 0, 0


def _groups(on, joined):
    """One representative neighbour (its bit) per group of the set neighbours ``on``;
    ``joined(a, b)`` says whether two set neighbours are already connected to each other."""
    reps, seen = [], set()
    for i in sorted(on):
        if i in seen:
            continue
        reps.append(i)
        todo = [i]
        seen.add(i)
        while todo:
            a = todo.pop()
            for b in on:
                if b not in seen and joined(a, b):
                    seen.add(b)
                    todo.append(b)
    return reps


def _build_tables():
    """Per mask: foreground (8-connected) representatives, 2 x area and 4 x Euler changes,
    and background (4-connected) representatives.

    A pixel joins at most 4 groups of neighbours: the set neighbours already connected to each
    other are one group (for the background: set 4-neighbours joined through the set diagonal
    between them), and one union per group suffices.
    """
    d_area2 = np.zeros(256, np.int32)
    d_euler = np.zeros(256, np.int32)
    reps8 = np.full((256, 5), -1, np.int32)  # column 0: count, then the neighbour bits
    reps4 = np.full((256, 5), -1, np.int32)
    for mask in range(256):
        on = {i for i in range(8) if mask >> i & 1}

        def bit(dr, dc, with_p):
            if (dr, dc) == (0, 0):
                return 1 if with_p else 0
            return 1 if _NEIGHBOURS.index((dr, dc)) in on else 0

        for wr in (-1, 0):
            for wc in (-1, 0):
                cells = [(wr, wc), (wr, wc + 1), (wr + 1, wc), (wr + 1, wc + 1)]
                a0, e0 = _window_area2_euler(tuple(bit(r, c, False) for r, c in cells))
                a1, e1 = _window_area2_euler(tuple(bit(r, c, True) for r, c in cells))
                d_area2[mask] += a1 - a0
                d_euler[mask] += e1 - e0

        def near8(a, b):
            (ra, ca), (rb, cb) = _NEIGHBOURS[a], _NEIGHBOURS[b]
            return max(abs(ra - rb), abs(ca - cb)) == 1

        def near4(a, b):  # edges 1 N, 3 E, 5 S, 7 W; the diagonal between two is their mean
            return abs(a - b) in (2, 6) and ((a + b) // 2 if abs(a - b) == 2 else 0) in on

        for table, group in ((reps8, _groups(on, near8)),
                             (reps4, _groups(on & {1, 3, 5, 7}, near4))):
            table[mask, 0] = len(group)
            table[mask, 1:1 + len(group)] = group
    return d_area2, d_euler, reps8, reps4


_D_AREA2, _D_EULER, _REPS8, _REPS4 = _build_tables()


def _pack(reps, d_area2, d_euler):
    """One int64 per mask for the sweep: bits 0-2 the number of groups, then 3 bits per
    representative, bits 16-23 the area change + 128, bits 24-31 the Euler change + 128."""
    table = reps[:, 0].astype(np.int64)
    for k in range(4):
        table |= np.maximum(reps[:, 1 + k], 0).astype(np.int64) << (3 + 3 * k)
    return table | (d_area2.astype(np.int64) + 128) << 16 | (d_euler.astype(np.int64) + 128) << 24


_TABLE8 = _pack(_REPS8, _D_AREA2, _D_EULER)  # foreground: 8-connected, area and Euler number
_TABLE4 = _pack(_REPS4, 0 * _D_AREA2, 0 * _D_EULER)  # background: 4-connected
_U = np.uint64  # index casts in the kernels: numba checks signed indices for negative values


# ----------------------------------------------------------------------------------------------
# numba kernels
# ----------------------------------------------------------------------------------------------

# Per-component table ``at`` (int32, one row per component id, valid at roots):
_X0, _Y0, _X1, _Y1 = 0, 1, 2, 3  # pixel box, inclusive
_FIRST = 4  # smallest padded raster index of a pixel (where cv2 starts its contour)
_COUNT = 5  # pixels
_AREA2 = 6  # 2 x hole-free contour area (foreground)
_EULER4 = 7  # 4 x Euler number (foreground; 4: no hole)
_LIVEPOS = 8  # position in the list of live roots
_CHANGED = 9  # index of the last level at which the component changed
_CACHED = 10  # index of the level at which the cached values were computed (-1: none)
_FILLED2 = 11  # 2 x contour area with holes filled at the last trace (single contour)
_NCOL = 16  # (64-byte rows)


@numba.njit(cache=True)
def _quantize(cam):
    """``quantize_cam`` in one pass (indices go through ``_U``: numba checks signed ones for
    negative values).

    Returns (qp, cum, ok): the quantised map in a grid padded with -1, ``cum[v]`` the number
    of pixels of value < v (v in 0..256), and ``ok``, False for values outside [0, 1] or NaN
    (``validate_cam`` then says which).
    """
    h, w = cam.shape
    qp = np.full((h + 2, w + 2), -1, np.int16)
    cum = np.zeros(257, np.int64)
    ok = True
    for r in range(h):
        for c in range(w):
            x = np.float64(cam[_U(r), _U(c)])
            v = 0
            if x >= 0.0 and x <= 1.0:
                v = np.int64(x * 255.0)  # truncation, as astype(uint8)
            else:
                ok = False
            qp[_U(r + 1), _U(c + 1)] = v
            cum[_U(v + 1)] += 1
    for v in range(256):
        cum[v + 1] += cum[v]
    return qp, cum, ok


@numba.njit(cache=True)
def _sort_pixels(qp, cum):
    """The pixels of ``_quantize``'s grid in increasing value order (counting sort; raster
    order within a value).

    Returns (order, masks): ``order`` packs ``row << 16 | col``; ``masks[i]`` is the
    8-neighbourhood mask (bits as ``_NEIGHBOURS``) of the neighbours that come after pixel
    ``order[i]`` in that order, i.e. those already on when the decreasing-value sweep switches
    it on (the increasing sweep sees the other neighbours inside the image).
    """
    h = qp.shape[0] - 2
    w = qp.shape[1] - 2
    mk = np.empty((h, w), np.uint8)
    for r in range(1, h + 1):  # raster-earlier neighbours come after on a larger value,
        a = qp[_U(r - 1)]  # raster-later ones on an equal or larger value
        m = qp[_U(r)]
        b = qp[_U(r + 1)]
        out = mk[_U(r - 1)]
        for c in range(1, w + 1):
            v = m[_U(c)]
            out[_U(c - 1)] = (
                (a[_U(c - 1)] > v) | ((a[_U(c)] > v) << 1) | ((a[_U(c + 1)] > v) << 2)
                | ((m[_U(c + 1)] >= v) << 3) | ((b[_U(c + 1)] >= v) << 4)
                | ((b[_U(c)] >= v) << 5) | ((b[_U(c - 1)] >= v) << 6) | ((m[_U(c - 1)] > v) << 7))
    pos = cum[:256].copy()
    order = np.empty(h * w, np.int32)
    masks = np.empty(h * w, np.uint8)
    for r in range(h):
        row = qp[_U(r + 1)]
        for c in range(w):
            v = row[_U(c + 1)]
            k = pos[_U(v)]
            pos[_U(v)] = k + 1
            order[_U(k)] = (r << 16) | c
            masks[_U(k)] = mk[_U(r), _U(c)]
    return order, masks


@numba.njit(cache=True, inline="always")
def _merge(parent, at, live, nlive, ra, rb):
    """Unites the roots ``ra != rb`` (the larger one stays root); returns (root, nlive)."""
    if at[_U(ra), _COUNT] < at[_U(rb), _COUNT]:
        ra, rb = rb, ra
    parent[_U(rb)] = ra
    for k in (_X0, _Y0, _FIRST):
        if at[_U(rb), k] < at[_U(ra), k]:
            at[_U(ra), k] = at[_U(rb), k]
    for k in (_X1, _Y1):
        if at[_U(rb), k] > at[_U(ra), k]:
            at[_U(ra), k] = at[_U(rb), k]
    at[_U(ra), _COUNT] += at[_U(rb), _COUNT]
    at[_U(ra), _AREA2] += at[_U(rb), _AREA2]
    at[_U(ra), _EULER4] += at[_U(rb), _EULER4]
    at[_U(ra), _FILLED2] = max(at[_U(ra), _FILLED2], at[_U(rb), _FILLED2])
    pos = at[_U(rb), _LIVEPOS]
    last = live[_U(nlive - 1)]
    live[_U(pos)] = last
    at[_U(last), _LIVEPOS] = pos
    return ra, nlive - 1



# Directions of the border following, counterclockwise on screen: E, NE, N, NW, W, SW, S, SE.
_DX = np.array([1, 1, 0, -1, -1, -1, 0, 1], np.int64)
_DY = np.array([0, -1, -1, -1, 0, 1, 1, 1], np.int64)


@numba.njit(cache=True)
def _outer_area2(lab, pw, start):
    """2 x ``cv2.contourArea`` of the outer contour of the component whose first pixel (in
    raster order) is ``start``: Suzuki-Abe border following, as ``cv2.findContours`` does,
    with the shoelace sum along the way. ``lab >= 0`` marks foreground pixels."""
    step = _DX + _DY * pw
    first = -1
    for k in range(8):  # clockwise from W; W, NW, N and NE are background (raster order)
        d = (4 - k) & 7
        if lab[_U(start + step[_U(d)])] >= 0:
            first = d
            break
    if first < 0:
        return np.int64(0)  # a single pixel
    last = start + step[_U(first)]  # the contour ends with this pixel
    cur = start
    back = first  # direction from cur to the previous contour pixel
    x = np.int64(0)
    y = np.int64(0)
    area2 = np.int64(0)
    while True:
        d = back
        for k in range(1, 9):  # counterclockwise from the one after the previous pixel
            d = (back + k) & 7
            if lab[_U(cur + step[_U(d)])] >= 0:
                break
        nxt = cur + step[_U(d)]
        nx = x + _DX[_U(d)]
        ny = y + _DY[_U(d)]
        area2 += x * ny - nx * y
        if nxt == start and cur == last:
            break
        back = (d + 4) & 7
        cur = nxt
        x = nx
        y = ny
    return abs(area2)


@numba.njit(cache=True, inline="always")
def _area2_bounds(at, rt):
    """(lower, upper) bound of 2 x the contour area (holes filled) of component ``rt``.

    No hole (Euler number 1): the hole-free area, exact. Otherwise each hole adds at least 2
    (``4 - _EULER4`` is 4 x the number of holes), the area of the last trace still bounds it
    from below (a component only grows), exact while the component is unchanged, and the
    filled region lies in the pixel box.
    """
    a2 = np.int64(at[_U(rt), _AREA2])
    if at[_U(rt), _EULER4] == 4:
        return a2, a2
    if at[_U(rt), _CACHED] >= at[_U(rt), _CHANGED]:
        return np.int64(at[_U(rt), _FILLED2]), np.int64(at[_U(rt), _FILLED2])
    bw = np.int64(at[_U(rt), _X1] - at[_U(rt), _X0] + 1)
    bh = np.int64(at[_U(rt), _Y1] - at[_U(rt), _Y0] + 1)
    return (max(a2 + 4 - at[_U(rt), _EULER4], np.int64(at[_U(rt), _FILLED2])),
            min(2 * (bw - 1) * (bh - 1), a2 + 4 * (bw * bh - at[_U(rt), _COUNT])))


@numba.njit(cache=True)
def _largest(lab, at, live, nlive, pw, li):
    """The live root whose contour has the largest area (holes filled); ties -> the largest
    first pixel. Only the components whose bounds (``_area2_bounds``) leave them a chance
    are traced, largest upper bound first."""
    lower = np.int64(-1)
    for k in range(nlive):
        lower = max(lower, _area2_bounds(at, live[_U(k)])[0])
    n_candidates = 0
    best = -1
    for k in range(nlive):
        if _area2_bounds(at, live[_U(k)])[1] >= lower:
            n_candidates += 1
            best = live[_U(k)]
    if n_candidates == 1:
        return best
    best = -1
    best_area = np.int64(-1)
    todo = np.empty(n_candidates, np.int64)
    upper = np.empty(n_candidates, np.int64)
    n_todo = 0
    for k in range(nlive):  # exact areas first
        rt = live[_U(k)]
        lo, up = _area2_bounds(at, rt)
        if up < lower:
            continue
        if lo < up:
            todo[n_todo] = rt
            upper[n_todo] = up
            n_todo += 1
        elif lo > best_area or (lo == best_area and at[_U(rt), _FIRST] > at[_U(best), _FIRST]):
            best_area = lo
            best = rt
    for k in np.argsort(-upper[:n_todo]):  # then trace, largest upper bound first
        rt = todo[_U(k)]
        if upper[_U(k)] < best_area or (upper[_U(k)] == best_area
                                        and at[_U(rt), _FIRST] < at[_U(best), _FIRST]):
            break
        a2 = _outer_area2(lab, pw, at[_U(rt), _FIRST])
        at[_U(rt), _FILLED2] = a2
        at[_U(rt), _CACHED] = li
        if a2 > best_area or (a2 == best_area and at[_U(rt), _FIRST] > at[_U(best), _FIRST]):
            best_area = a2
            best = rt
    return best


@numba.njit(cache=True, inline="always")
def _iou(x0, y0, x1, y1, gt):
    """The best IoU of a box with the GT boxes, as ``keras_dgdm.boxes.iou`` computes it (+1
    convention, the same float operations), with (intersection, union) of that GT box, and
    (intersection, area) of the GT box with the largest share inside the box (its cover)."""
    best = -1.0
    cover = -1.0
    bi = bu = ci = cb = 0.0
    a = (x1 - x0 + 1.0) * (y1 - y0 + 1.0)
    for g in range(gt.shape[0]):
        iw = max(min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1.0, 0.0)
        ih = max(min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1.0, 0.0)
        inter = iw * ih
        b = (gt[g, 2] - gt[g, 0] + 1.0) * (gt[g, 3] - gt[g, 1] + 1.0)
        union = a + b - inter
        v = inter / max(union, 1e-12)
        if v > best:
            best, bi, bu = v, inter, union
        v = inter / max(b, 1e-12)
        if v > cover:
            cover, ci, cb = v, inter, b
    return best, bi, bu, ci, cb


@numba.njit(cache=True, inline="always")
def _emit(boxes, nbox, x0, y0, x1, y1):
    if nbox >= boxes.shape[0]:
        boxes = _grow(boxes)
    boxes[nbox, 0] = x0
    boxes[nbox, 1] = y0
    boxes[nbox, 2] = x1
    boxes[nbox, 3] = y1
    return boxes


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
def _grow(boxes):
    out = np.zeros((boxes.shape[0] * 2, 4), np.int64)
    out[: boxes.shape[0]] = boxes
    return out


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


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def _check_size(shape):
    if max(shape) >= 1 << 15:
        raise ValueError(f"cam is too large for the box search (shape {shape}); "
                         "height and width must be below 32768.")


def _check_thresholds(thresholds):
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ValueError("cam_thresholds must not be empty.")
    if not (t.min() >= 0.0 and t.max() <= 1.0):  # NaN fails too
        raise ValueError(f"cam_thresholds must be in [0, 1]; got min {t.min()}, max {t.max()}.")
    return t


def _is_integer(boxes):
    return bool(np.all(boxes == np.floor(boxes)))


def _run_search(cam, thresholds, multi_contour, gt, emit):
    """Checks the inputs (with ``validate_cam``'s errors) and runs ``_search``."""
    arr = np.asarray(cam)
    if arr.ndim != 2 or arr.size == 0 or arr.dtype not in (np.float32, np.float64):
        arr = validate_cam(arr)  # raises for a wrong rank or an empty map
    arr = np.ascontiguousarray(arr)
    _check_size(arr.shape)
    t = _check_thresholds(thresholds)
    out = _search(arr, t, bool(multi_contour), gt, _is_integer(gt), emit)
    if not out[0]:
        validate_cam(arr)  # raises: NaN or values outside [0, 1]
    return out[1:]


def boxes_at_thresholds(cam, cam_thresholds, multi_contour=False):
    """Boxes of a CAM at every CAM threshold, by the reference evaluator's rules.

    Args:
        cam: (H, W) float array in [0, 1].
        cam_thresholds: 1-D sequence of thresholds in [0, 1] (usually ``cam_thresholds()``).
        multi_contour: False -> the box of the largest contour only; True -> the boxes of all
            contours (outer contours of every component and hole contours; their order is not
            cv2's).

    Returns:
        A list with one (k_t, 4) int64 array of (x0, y0, x1, y1) boxes per threshold
        (k_t == 1 in single-contour mode; an empty foreground gives [[0, 0, 0, 0]]).

    Example:
        >>> cam = np.zeros((5, 5)); cam[1:3, 1:4] = 1.0
        >>> boxes_at_thresholds(cam, [0.5])[0].tolist()   # x1 = 3 + 1, y1 = 2 + 1 (cv2 rule)
        [[1, 1, 4, 3]]
    """
    _, inverse, boxes, counts, hole_boxes, hole_counts = _run_search(
        cam, cam_thresholds, multi_contour, np.zeros((0, 4)), True)
    fg = np.split(boxes, np.cumsum(counts)[:-1])[::-1]  # -> increasing level order
    holes = np.split(hole_boxes, np.cumsum(hole_counts)[:-1])
    if not multi_contour:
        return [fg[li] for li in inverse]
    return [np.concatenate([fg[li], holes[li]], axis=0) for li in inverse]


def box_from_cam(cam, threshold):
    """The single-contour box of ``cam`` at one CAM ``threshold``: a (4,) int64 array.

    Example:
        >>> cam = np.zeros((4, 4)); cam[3, 3] = 1.0
        >>> box_from_cam(cam, 0.5).tolist()   # touches the border: x1 = y1 = W - 1
        [3, 3, 3, 3]
    """
    return boxes_at_thresholds(cam, [threshold], multi_contour=False)[0][0]


def best_iou_curve(cam, gt_boxes, cam_thresholds, multi_contour=False):
    """Best IoU between the CAM's box(es) and the GT boxes at every CAM threshold.

    This is the hot path of ``keras_dgdm.metrics``: the boxes of all thresholds come from one
    sweep over the CAM (two in multi-contour mode) and their IoUs (+1 pixel convention, as
    ``keras_dgdm.boxes.iou``) are taken inside it.

    Args:
        cam: (H, W) float array in [0, 1].
        gt_boxes: (k, 4) GT boxes (x0, y0, x1, y1) in the CAM's pixel frame, k >= 1.
        cam_thresholds: 1-D sequence of thresholds in [0, 1].
        multi_contour: see ``boxes_at_thresholds``.

    Returns:
        (T,) float64: the max over (predicted boxes x GT boxes) of the IoU at each threshold.

    Example:
        >>> cam = np.zeros((8, 8)); cam[2:5, 2:5] = 1.0
        >>> best_iou_curve(cam, [[2, 2, 5, 5]], [0.0, 0.5]).tolist()
        [1.0, 1.0]
    """
    gt = validate_boxes(gt_boxes, name="gt_boxes")
    if gt.shape[0] == 0:
        raise ValueError("gt_boxes must hold at least one box.")
    return _run_search(cam, cam_thresholds, multi_contour, np.ascontiguousarray(gt), False)[0]


def best_iou_curves(cams, gt_boxes, cam_thresholds, multi_contour=False):
    """``best_iou_curve`` of every CAM of a batch, in one call (the evaluator's hot path).

    Args:
        cams: (N, H, W) float array in [0, 1].
        gt_boxes: N arrays of GT boxes, shape (k_i, 4) with k_i >= 1, in the CAMs' pixel frame.
        cam_thresholds: 1-D sequence of thresholds in [0, 1].
        multi_contour: see ``boxes_at_thresholds``.

    Returns:
        (N, T) float64: row ``i`` is ``best_iou_curve(cams[i], gt_boxes[i], ...)``.

    Raises:
        ValueError naming ``cams[i]`` or ``gt_boxes[i]`` for a malformed input.

    Example:
        >>> cams = np.zeros((2, 8, 8)); cams[:, 2:5, 2:5] = 1.0
        >>> best_iou_curves(cams, [[[2, 2, 5, 5]], [[2, 2, 3, 3]]], [0.5]).tolist()
        [[1.0], [0.25]]
    """
    arr = np.asarray(cams)
    if arr.ndim != 3:
        raise ValueError(f"cams must have shape (N, H, W); got shape {arr.shape}.")
    if len(gt_boxes) != arr.shape[0]:
        raise ValueError(f"gt_boxes must hold one (k, 4) array per CAM: got {len(gt_boxes)} "
                         f"arrays for {arr.shape[0]} CAMs.")
    if arr.size == 0 or arr.dtype not in (np.float32, np.float64):
        for i in range(arr.shape[0]):
            validate_cam(arr[i], name=f"cams[{i}]")  # raises for an empty map
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    _check_size(arr.shape[1:])
    t = _check_thresholds(cam_thresholds)
    gts = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in gt_boxes]
    sizes = np.array([g.shape[0] for g in gts], np.int64)
    flat = np.concatenate(gts, axis=0) if gts else np.zeros((0, 4))
    for i in np.flatnonzero(sizes == 0)[:1]:
        raise ValueError(f"gt_boxes[{i}] must hold at least one box.")
    try:
        validate_boxes(flat)
    except ValueError:  # say which image
        for i, b in enumerate(gt_boxes):
            validate_boxes(b, name=f"gt_boxes[{i}]")
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    exact = np.logical_and.reduceat(np.all(flat == np.floor(flat), axis=1), offsets[:-1]) \
        if flat.shape[0] else np.zeros(0, np.bool_)
    curves, bad = _search_batch(arr, t, bool(multi_contour), np.ascontiguousarray(flat),
                                offsets, exact)
    if bad >= 0:
        validate_cam(arr[bad], name=f"cams[{bad}]")  # raises: NaN or values outside [0, 1]
    return curves
