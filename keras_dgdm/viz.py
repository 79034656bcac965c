"""Figures: input image, CAM overlay (jet), GT boxes in red and the predicted box in green, as in
the DGDM paper's Fig. 1 / Fig. 5. Matplotlib with the Agg backend (no display needed).

Boxes are ``(x0, y0, x1, y1)`` inclusive pixel corners (``keras_dgdm.boxes``); a box is drawn
as the rectangle around those pixels, from ``x0 - 0.5`` to ``x1 + 0.5``.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from keras_dgdm.boxes import validate_boxes, validate_cam  # noqa: E402

__all__ = ["overlay_cam", "plot_localization", "save_grid"]

GT_COLOR = "red"
PRED_COLOR = "lime"


def _check_image(image, name="image"):
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must be (H, W), (H, W, 1) or (H, W, 3); got {img.shape}.")
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    img = img.astype(np.float64)
    if img.size and img.max() > 1.0:  # [0, 255] pixels
        img = img / 255.0
    return np.clip(img, 0.0, 1.0)


def overlay_cam(image, cam, alpha=0.5):
    """Blends the jet-coloured CAM over the image.

    Args:
        image: (H, W, 3) or (H, W) pixels in [0, 255] (or [0, 1]).
        cam: (H, W) float in [0, 1], same size as the image.
        alpha: weight of the heatmap.

    Returns:
        (H, W, 3) float RGB in [0, 1].

    Example:
        >>> overlay_cam(np.zeros((4, 4, 3)), np.ones((4, 4)), alpha=1.0)[0, 0].round(2).tolist()
        [0.5, 0.0, 0.0]
    """
    img = _check_image(image)
    cam = validate_cam(cam)
    if cam.shape != img.shape[:2]:
        raise ValueError(f"cam has shape {cam.shape} but the image is {img.shape[:2]}; resize "
                         "the CAM to the image first.")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}.")
    heat = plt.get_cmap("jet")(cam)[..., :3]
    return (1.0 - alpha) * img + alpha * heat


def _draw_boxes(ax, boxes, color, name):
    if boxes is None:
        return
    for x0, y0, x1, y1 in validate_boxes(boxes, name=name):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                               edgecolor=color, linewidth=2))


def plot_localization(ax, image, cam, gt_boxes=None, pred_boxes=None, title=None, alpha=0.5):
    """Draws one example on a matplotlib axis: CAM overlay, GT boxes red, predicted box green.

    Args:
        ax: a matplotlib Axes.
        image: (H, W, 3) pixels in [0, 255] (or [0, 1]).
        cam: (H, W) CAM in [0, 1].
        gt_boxes: (k, 4) GT boxes or None.
        pred_boxes: (4,) or (k, 4) predicted boxes or None.
        title: axis title.
        alpha: heatmap weight.

    Returns:
        ``ax``.

    Example:
        >>> fig, ax = plt.subplots()
        >>> _ = plot_localization(ax, np.zeros((8, 8, 3)), np.eye(8), [[1, 1, 5, 5]], [2, 2, 6, 6])
        >>> len(ax.patches)
        2
    """
    ax.imshow(overlay_cam(image, cam, alpha), interpolation="nearest")
    _draw_boxes(ax, gt_boxes, GT_COLOR, "gt_boxes")
    _draw_boxes(ax, pred_boxes, PRED_COLOR, "pred_boxes")
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    return ax


def save_grid(path, images, cams, gt_boxes, pred_boxes, titles=None, columns=4, alpha=0.5):
    """Writes a PNG grid: for each example its image (left) and CAM overlay with boxes (right).

    Args:
        path: output PNG path.
        images: N images (H, W, 3) in [0, 255] (or [0, 1]).
        cams: N CAMs (H, W) in [0, 1].
        gt_boxes: N (k_i, 4) GT box arrays (red).
        pred_boxes: N (4,) or (k, 4) predicted boxes (green), e.g. from
            ``localization.box_from_cam``; entries may be None.
        titles: optional N strings.
        columns: examples per row.
        alpha: heatmap weight.

    Returns:
        ``path``.

    Example:
        >>> save_grid("/tmp/grid.png", np.zeros((2, 8, 8, 3)), np.stack([np.eye(8)] * 2),
        ...           [[[1, 1, 5, 5]]] * 2, [[2, 2, 6, 6]] * 2)
        '/tmp/grid.png'
    """
    n = len(images)
    if n == 0:
        raise ValueError("save_grid needs at least one example; images is empty.")
    for arg, value in (("cams", cams), ("gt_boxes", gt_boxes), ("pred_boxes", pred_boxes)):
        if len(value) != n:
            raise ValueError(f"{arg} must hold one entry per image ({n}); got {len(value)}.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must hold one string per image ({n}); got {len(titles)}.")
    columns = max(1, min(int(columns), n))
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(4.0 * columns, 2.2 * rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        r, c = divmod(i, columns)
        axes[r, 2 * c].imshow(_check_image(images[i], f"images[{i}]"), interpolation="nearest")
        plot_localization(axes[r, 2 * c + 1], images[i], cams[i], gt_boxes[i], pred_boxes[i],
                          title=None if titles is None else titles[i], alpha=alpha)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
