"""numba kernels of the box search on one component at a time: quantisation and pixel order,
the union-find merge, the contour area (traced and bounded), the IoU with the GT boxes."""
from __future__ import annotations

import numba
import numpy as np

_U = np.uint64  # index casts in the kernels: numba checks signed indices for negative values


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
def _grow(boxes):
    out = np.zeros((boxes.shape[0] * 2, 4), np.int64)
    out[: boxes.shape[0]] = boxes
    return out
