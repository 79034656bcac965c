"""A procedurally generated WSOL benchmark, made with numpy only.

Each image holds one *object*: a large **body** (an elongated ellipse with a head and a tail,
bird-like) and a small, highly discriminative **part** (a two-colour "eye": a disc of one palette
colour inside a ring of another). The object sits on a cluttered background.

Where the class evidence lives (this is what makes it a WSOL benchmark, not a toy):

* the **part** identifies the class exactly: class ``c`` has its own ordered pair of palette
  colours (centre, ring). The pattern is rotation- and flip-invariant, so training-time
  horizontal flips keep it valid;
* the **body** carries only a weak, noisy hint: its colour is
  ``body_hint * class_colour + (1 - body_hint) * random_colour`` plus noise and a stripe
  texture, so body colours of different classes overlap heavily;
* the **background** can carry class-correlated *context* (like water behind water birds):
  each class has a context type (stripe orientation, frequency and colours); with probability
  ``context_strength`` an image shows its class's context, otherwise a random one.

Ground truth is the object's mask (body + part), its box (the tight bounds of the mask, inclusive
corners, see ``keras_dgdm.boxes``) and the part's box (for analysis: how much of a CAM falls on
the part). Whether a plain CAM lights up only the part is the hypothesis this benchmark lets one
*measure*; nothing here forces it.

This module imports numpy only (no TensorFlow), so it works with the JAX and PyTorch backends.

Defaults and why:

* ``image_size=64``, ``num_classes=10``: a small CNN on a 2-core CPU learns it in minutes from a
  few thousand images (about 300 per class).
* ``object_scale=(0.4, 0.75)`` (body length / image side): objects of very different sizes, as in
  CUB, where boxes cover from a small to most of the image.
* ``part_scale=(0.055, 0.075)`` (part radius / image side): at 64x64 the part is 7 to 10 pixels
  across, big enough for a 3x3-conv network to resolve both colours, and 5-20% of the object's
  box, so "only the part" and "the whole object" give very different boxes (IoU < 0.5).
* ``body_hint=0.35``: the body alone is a weak cue (a body-only classifier is well above chance
  but far from the part's 100%), so the network has a reason to prefer the part.
* ``context_strength=0.5``: half the images show their class's context, the rest a random one;
  set 0 to remove the background shortcut, 1 to make it as strong as possible.
* ``clutter=6`` distractor blobs and strokes per image: single-coloured, so they never imitate
  a part, but they break "anything that is not background is the object".
* Class definitions come from ``class_seed`` (default 0), the same for every split; the images
  come from ``seed``. ``keras_dgdm.data.load("synthetic", split)`` uses seed ``[seed, 0]``,
  ``[seed, 1]``, ``[seed, 2]`` for train / val / test, so splits never share an image.

Example:

    >>> from keras_dgdm.data import synthetic
    >>> d = synthetic.generate(8, image_size=64, num_classes=10, seed=0)
    >>> d.images.shape, d.labels.shape, d.boxes.shape, d.masks.shape, d.part_boxes.shape
    ((8, 64, 64, 3), (8,), (8, 4), (8, 64, 64), (8, 4))
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from keras_dgdm.data.arrays import ArrayData, from_boxes

# Eight well separated colours for the parts: ordered (centre, ring) pairs of distinct colours
# give 8 * 7 = 56 class codes.
PALETTE = np.array(
    [
        (230, 30, 30),  # red
        (30, 200, 40),  # green
        (40, 70, 230),  # blue
        (240, 220, 30),  # yellow
        (220, 40, 220),  # magenta
        (30, 220, 220),  # cyan
        (250, 250, 250),  # white
        (15, 15, 15),  # black
    ],
    dtype=np.float32,
)
MAX_CLASSES = len(PALETTE) * (len(PALETTE) - 1)

# Context types: (stripe angle in degrees, stripes per image side, base colour, stripe colour).
CONTEXTS = (
    (90.0, 3.0, (70, 110, 170), (40, 70, 130)),  # "water": slow horizontal waves, blue
    (0.0, 9.0, (70, 120, 60), (40, 80, 35)),  # "foliage": dense vertical streaks, green
    (45.0, 6.0, (180, 160, 110), (150, 125, 80)),  # "sand": diagonal ripples, tan
    (135.0, 1.5, (170, 190, 215), (140, 160, 190)),  # "sky": a gentle gradient, pale blue
)

_CHUNK = 64  # images rendered at once; fixed so that the output never depends on the machine

#: What ``generate(show=...)`` can show: the benchmark, or one cue alone (cue-structure checks).
SHOW = ("all", "part", "body", "background")
_GREY = 128.0  # the flat fill of what ``show`` hides

#: The source task of the pretrained start (the stand-in for ImageNet): 30 classes whose part
#: codes and body colours are disjoint from those of the benchmark's classes (offsets 0-25),
#: drawn from the same distributions. ``training/pretrain.py`` trains ``small_vgg`` on it.
SOURCE_TASK = dict(num_classes=30, class_offset=26)


class SyntheticData(NamedTuple):
    """Arrays returned by ``generate``.

    Attributes:
        images: uint8 (N, H, W, 3) RGB.
        labels: int32 (N,) class ids in ``[0, num_classes)``.
        boxes: float32 (N, 4) object boxes (x0, y0, x1, y1), tight inclusive bounds of ``masks``.
        masks: uint8 (N, H, W), 1 on the object (body and part), 0 elsewhere.
        part_boxes: float32 (N, 4) boxes of the discriminative part, same convention.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    part_boxes: np.ndarray


class ClassDefinitions(NamedTuple):
    """What identifies each class (fixed by ``class_seed``, shared by all splits).

    Attributes:
        part_colours: float32 (C, 2, 3): centre and ring colour of each class's part.
        body_colours: float32 (C, 3): each class's body colour (the weak hint).
        contexts: int32 (C,): each class's context type (index into ``CONTEXTS``).
        names: list of C strings.
    """

    part_colours: np.ndarray
    body_colours: np.ndarray
    contexts: np.ndarray
    names: list


def class_definitions(num_classes, class_seed=0, class_offset=0):
    """The class-identifying properties of the synthetic benchmark.

    All ``MAX_CLASSES`` (56) part codes are put in one order fixed by ``class_seed``, each with
    its own body colour; a benchmark with ``num_classes`` classes takes the codes
    ``class_offset .. class_offset + num_classes - 1`` of that order. Two benchmarks with the
    same ``class_seed`` and non-overlapping ranges have disjoint classes: different part codes
    and different body colours. That is how the source task of the pretrained start
    (``SOURCE_TASK``) is kept apart from the target benchmark (offset 0).

    Args:
        num_classes: number of classes, 2 to ``MAX_CLASSES - class_offset``.
        class_seed: seed of the class definitions; keep it fixed across splits.
        class_offset: index of the first class code taken (>= 0).

    Returns:
        A ``ClassDefinitions``.

    Example:
        >>> defs = class_definitions(10)
        >>> defs.part_colours.shape
        (10, 2, 3)
        >>> source = class_definitions(30, class_offset=26)  # disjoint from the first 26
    """
    class_offset = _check_int(class_offset, "class_offset", 0, MAX_CLASSES - 2)
    num_classes = _check_int(num_classes, "num_classes", 2, MAX_CLASSES - class_offset)
    rng = np.random.default_rng([int(class_seed), 7919])
    p = len(PALETTE)
    codes = [(i, j) for i in range(p) for j in range(p) if i != j]
    order = rng.permutation(len(codes))
    all_body_colours = rng.uniform(40, 215, size=(len(codes), 3)).astype(np.float32)
    take = np.arange(class_offset, class_offset + num_classes)
    pairs = np.array([codes[k] for k in order[take]])
    part_colours = PALETTE[pairs]  # (C, 2, 3)
    body_colours = all_body_colours[take]
    # Context types are balanced within the benchmark's own classes.
    ctx_rng = np.random.default_rng([int(class_seed), 7919, class_offset])
    contexts = (ctx_rng.permutation(num_classes) % len(CONTEXTS)).astype(np.int32)
    names = [f"class_{c:02d}" for c in range(class_offset, class_offset + num_classes)]
    return ClassDefinitions(part_colours, body_colours, contexts, names)


def generate(
    num_images,
    image_size=64,
    num_classes=10,
    seed=0,
    class_seed=0,
    class_offset=0,
    body_hint=0.75,
    context_strength=0.5,
    clutter=6,
    object_scale=(0.4, 0.75),
    part_scale=(0.055, 0.075),
    noise=6.0,
    show="all",
):
    """Generates ``num_images`` images of the synthetic WSOL benchmark (numpy only).

    Deterministic: the same arguments give the same arrays, on any machine.

    Args:
        num_images: number of images (>= 0).
        image_size: side of the square images in pixels (>= 24).
        num_classes: number of classes, 2 to 56.
        seed: int or sequence of ints seeding the images (classes come from ``class_seed``).
        class_seed: seed of the class definitions (``class_definitions``).
        class_offset: index of the first class code (``class_definitions``); 0 for the
            benchmark, ``SOURCE_TASK["class_offset"]`` for the pretraining source task.
        body_hint: in [0, 1], how much of the body colour comes from the class (0: none).
        context_strength: in [0, 1], probability that the background shows the class's context
            rather than a random context type.
        clutter: number of distractor blobs / strokes on the background (>= 0).
        object_scale: (min, max) body length as a fraction of ``image_size``, in (0, 1].
        part_scale: (min, max) part radius as a fraction of ``image_size``, in (0, 0.25].
        noise: standard deviation of the per-pixel Gaussian noise, in grey levels (>= 0).
        show: which cue the images show, for measuring the cue structure (``SHOW``): "all"
            (the benchmark), "part" (only the part, on flat grey), "body" (only the body, the
            part painted over in the body's colour, on flat grey) or "background" (the object
            painted over in flat grey). Everything else (labels, boxes, masks, noise, the
            random draws) is the same as with "all".

    Returns:
        A ``SyntheticData`` named tuple (images, labels, boxes, masks, part_boxes).

    Example:
        >>> d = generate(4, image_size=32, num_classes=3, seed=1)
        >>> bool((d.masks.sum(axis=(1, 2)) > 0).all())
        True
    """
    num_images = _check_int(num_images, "num_images", 0, None)
    size = _check_int(image_size, "image_size", 24, None)
    defs = class_definitions(num_classes, class_seed, class_offset)
    if show not in SHOW:
        raise ValueError(f"show must be one of {SHOW}; got {show!r}.")
    body_hint = _check_fraction(body_hint, "body_hint")
    context_strength = _check_fraction(context_strength, "context_strength")
    clutter = _check_int(clutter, "clutter", 0, None)
    obj_lo, obj_hi = _check_range(object_scale, "object_scale", 0.0, 1.0)
    part_lo, part_hi = _check_range(part_scale, "part_scale", 0.0, 0.25)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")

    rng = np.random.default_rng(seed)
    n = num_images
    s = float(size)
    # --- per-image parameters, all drawn up front -------------------------------------------
    labels = rng.integers(0, num_classes, size=n).astype(np.int32)
    own_context = rng.random(n) < context_strength
    contexts = np.where(own_context, defs.contexts[labels], rng.integers(0, len(CONTEXTS), n))
    length = rng.uniform(obj_lo, obj_hi, n) * s
    a = length / 2  # body semi-major axis
    b = a * rng.uniform(0.35, 0.6, n)  # semi-minor axis
    theta = rng.uniform(0, np.pi, n)
    flip = np.where(rng.random(n) < 0.5, -1.0, 1.0)  # which end is the head
    reach = np.minimum(1.4 * a, s / 2)
    cx = rng.uniform(reach, s - reach)
    cy = rng.uniform(reach, s - reach)
    head_r = b * rng.uniform(0.6, 0.9, n)
    tail_len = a * rng.uniform(0.25, 0.45, n)
    tail_angle = theta + rng.uniform(-0.5, 0.5, n)
    part_r = rng.uniform(part_lo, part_hi, n) * s
    part_t = rng.uniform(-0.7, 1.1, n)  # position along the body axis, head end = 1.1
    part_v = rng.uniform(-0.5, 0.5, n)  # across the axis, in units of b
    random_colour = rng.uniform(30, 225, (n, 3))
    body_colour = body_hint * defs.body_colours[labels] + (1 - body_hint) * random_colour
    body_colour = body_colour + rng.normal(0, 12, (n, 3))
    texture_freq = rng.uniform(2.0, 5.0, n)
    texture_amp = rng.uniform(0.05, 0.2, n)
    part_jitter = rng.normal(0, 8, (n, 2, 3))
    ctx_phase = rng.uniform(0, 2 * np.pi, n)
    ctx_angle = np.deg2rad(np.array([c[0] for c in CONTEXTS])[contexts] + rng.normal(0, 8, n))
    ctx_freq = np.array([c[1] for c in CONTEXTS])[contexts] * rng.uniform(0.8, 1.25, n)
    ctx_base = np.array([c[2] for c in CONTEXTS], np.float32)[contexts] + rng.normal(0, 12, (n, 3))
    ctx_stripe = np.array([c[3] for c in CONTEXTS], np.float32)[contexts]
    low_freq = rng.normal(0, 18, (n, 4, 4, 3))
    clutter_xy = rng.uniform(0, s, (n, clutter, 2))
    clutter_ax = rng.uniform(0.03, 0.12, (n, clutter, 1)) * s * np.array([1.0, 1.0])
    clutter_ax[..., 1] *= rng.uniform(0.15, 1.0, (n, clutter))  # some are thin strokes
    clutter_angle = rng.uniform(0, np.pi, (n, clutter))
    clutter_colour = rng.uniform(20, 235, (n, clutter, 3))

    # head and tail centres, part centre (kept inside the image)
    ux, uy = np.cos(theta) * flip, np.sin(theta) * flip
    head_x, head_y = cx + 0.85 * a * ux, cy + 0.85 * a * uy
    tail_x, tail_y = cx - (a + 0.6 * tail_len) * ux, cy - (a + 0.6 * tail_len) * uy
    px = cx + part_t * a * ux - part_v * b * uy
    py = cy + part_t * a * uy + part_v * b * ux
    px = np.clip(px, part_r, s - 1 - part_r)
    py = np.clip(py, part_r, s - 1 - part_r)

    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    part_masks_bounds = np.empty((n, 4), np.float32)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    upsample = _bilinear_matrix(4, size)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        m = sl.stop - sl.start

        def col(v):
            return np.asarray(v[sl], np.float32).reshape(m, 1, 1)

        # background: context stripes + low-frequency colour field + clutter
        ang = col(ctx_angle)
        proj = grid_x * np.cos(ang) + grid_y * np.sin(ang)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * col(ctx_freq) * proj / s + col(ctx_phase))
        base = ctx_base[sl][:, None, None, :].astype(np.float32)
        stripe_col = ctx_stripe[sl][:, None, None, :]
        img = base + (stripe_col - base) * stripes[..., None]
        field = np.matmul(upsample, low_freq[sl].astype(np.float32).transpose(0, 3, 1, 2))
        field = np.matmul(field, upsample.T)  # (m, 3, H, W)
        img += field.transpose(0, 2, 3, 1)
        for k in range(clutter):
            inside = _ellipse(
                grid_x, grid_y, clutter_xy[sl, k, 0], clutter_xy[sl, k, 1],
                clutter_ax[sl, k, 0], clutter_ax[sl, k, 1], clutter_angle[sl, k],
            )
            colour = clutter_colour[sl, k][:, None, None, :].astype(np.float32)
            img = np.where(inside[..., None], colour, img)
        # body: main ellipse + head + tail, textured
        body = _ellipse(grid_x, grid_y, cx[sl], cy[sl], a[sl], b[sl], theta[sl])
        body |= _ellipse(grid_x, grid_y, head_x[sl], head_y[sl], head_r[sl], head_r[sl], theta[sl])
        body |= _ellipse(
            grid_x, grid_y, tail_x[sl], tail_y[sl], tail_len[sl], 0.3 * b[sl], tail_angle[sl]
        )
        along = (grid_x - col(cx)) * col(np.cos(theta))
        along = along + (grid_y - col(cy)) * col(np.sin(theta))
        texture = 1 + col(texture_amp) * np.sin(
            2 * np.pi * col(texture_freq) * along / np.maximum(col(a), 1)
        )
        body_rgb = body_colour[sl][:, None, None, :].astype(np.float32) * texture[..., None]
        img = np.where(body[..., None], body_rgb, img)
        # part: centre disc + ring
        d2 = (grid_x - col(px)) ** 2 + (grid_y - col(py)) ** 2
        r2 = col(part_r) ** 2
        ring = d2 <= r2
        centre = d2 <= 0.3 * r2  # centre radius ~0.55 R: both colours take similar areas
        colours = defs.part_colours[labels[sl]] + part_jitter[sl]  # (m, 2, 3)
        if show != "body":
            img = np.where(ring[..., None], colours[:, 1][:, None, None, :].astype(np.float32),
                           img)
            img = np.where(centre[..., None],
                           colours[:, 0][:, None, None, :].astype(np.float32), img)
        if show != "all":
            shown = {"part": ring, "body": body, "background": ~(body | ring)}[show]
            img = np.where(shown[..., None], img, np.float32(_GREY))
        if noise > 0:
            img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
        images[sl] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        masks[sl] = body | ring
        part_masks_bounds[sl] = _tight_boxes(ring)
    boxes = _tight_boxes(masks.astype(bool))
    return SyntheticData(images, labels, boxes, masks, part_masks_bounds)


#: Default split sizes of ``load_split``: enough to fine-tune a small CNN at 96x96 in minutes on
#: a CPU, and a test set whose localization accuracy is known to about +-1.5 points.
SPLIT_SIZES = {"train": 3000, "val": 500, "test": 1000}
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


def load_split(split, data_dir=None, num_images=None, image_size=64, num_classes=10, seed=0,
               num_train=SPLIT_SIZES["train"], num_val=SPLIT_SIZES["val"],
               num_test=SPLIT_SIZES["test"], **generator_options):
    """One split of the benchmark as an ``ArrayData`` (``keras_dgdm.data.load("synthetic", ...)``
    wraps it for tf.data).

    Split ``i`` (train 0, val 1, test 2) is generated with seed ``[seed, i]``: the splits never
    share images, and the class definitions (``class_seed``) are the same in all of them.
    Examples carry boxes, masks and part boxes.

    Args:
        split: "train", "val" or "test".
        data_dir: unused (the data is generated); a value is ignored with a warning.
        num_images: images in this split; overrides the per-split sizes below.
        num_train, num_val, num_test: split sizes used when ``num_images`` is None (one set of
            options can then serve all three splits).
        image_size, num_classes: as ``generate``.
        seed: base seed of the images.
        **generator_options: other arguments of ``generate`` (``body_hint``,
            ``context_strength``, ``show``, ``clutter``, ``object_scale``, ``part_scale``,
            ``noise``, ``class_seed``, ``class_offset``).
    """
    if split not in _SPLIT_INDEX:
        raise ValueError(f"split must be one of {list(_SPLIT_INDEX)}; got {split!r}.")
    if data_dir is not None:
        logging.getLogger("keras_dgdm.data").warning(
            "load('synthetic'): data_dir=%r is ignored (the data is generated).", data_dir)
    if num_images is None:
        num_images = {"train": num_train, "val": num_val, "test": num_test}[split]
    data = generate(num_images, image_size=image_size, num_classes=num_classes,
                    seed=[int(seed), _SPLIT_INDEX[split]], **generator_options)
    defs = class_definitions(num_classes, generator_options.get("class_seed", 0),
                             generator_options.get("class_offset", 0))
    return ArrayData(name="synthetic", split=split, images=data.images, labels=data.labels,
                     boxes=from_boxes(data.boxes), num_classes=num_classes,
                     class_names=defs.names, masks=data.masks, part_boxes=data.part_boxes)


def _ellipse(gx, gy, cx, cy, ax, ay, angle):
    """Boolean (m, H, W): pixels inside the rotated ellipses (one per image)."""
    shape = (-1, 1, 1)
    cx, cy, ax, ay, angle = (
        np.asarray(v, np.float32).reshape(shape) for v in (cx, cy, ax, ay, angle)
    )
    dx, dy = gx - cx, gy - cy
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / np.maximum(ax, 0.5)
    v = (-dx * s + dy * c) / np.maximum(ay, 0.5)
    return u * u + v * v <= 1.0


def _tight_boxes(mask):
    """(m, H, W) boolean -> float32 (m, 4) inclusive (x0, y0, x1, y1) bounds; empty -> zeros."""
    m, h, w = mask.shape
    cols = mask.any(axis=1)
    rows = mask.any(axis=2)
    x0 = cols.argmax(axis=1)
    x1 = w - 1 - cols[:, ::-1].argmax(axis=1)
    y0 = rows.argmax(axis=1)
    y1 = h - 1 - rows[:, ::-1].argmax(axis=1)
    out = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    out[~cols.any(axis=1)] = 0
    return out


def _bilinear_matrix(n_in, n_out):
    """(n_out, n_in) matrix that linearly interpolates n_in samples onto n_out pixels."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    mat = np.zeros((n_out, n_in), np.float32)
    mat[np.arange(n_out), lo] += 1 - frac
    mat[np.arange(n_out), hi] += frac
    return mat


def _check_int(value, name, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {value!r}.")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}; got {value}.")
    return int(value)


def _check_fraction(value, name):
    if not (isinstance(value, (int, float, np.floating)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}.")
    return float(value)


def _check_range(value, name, lo, hi):
    try:
        v0, v1 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair; got {value!r}.") from None
    if not (lo < v0 <= v1 <= hi):
        raise ValueError(f"{name} must satisfy {lo} < min <= max <= {hi}; got {value!r}.")
    return v0, v1
