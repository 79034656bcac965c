"""Lookup tables of the box search, indexed by the 8-neighbourhood mask of a pixel being
switched on (``keras_dgdm.boxes._sweep`` uses them)."""
from __future__ import annotations

import numpy as np

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
