"""Figures: overlay colours, box rectangles around the right pixels, PNG grid on disk."""
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from keras_dgdm.viz import overlay_cam, plot_localization, save_grid


def test_overlay_is_a_jet_blend():
    img = np.full((2, 2, 3), 255, np.uint8)
    cam = np.array([[0.0, 1.0], [0.0, 1.0]])
    out = overlay_cam(img, cam, alpha=0.5)
    # jet(0) = dark blue (0, 0, 0.5), jet(1) = dark red (0.5, 0, 0); white image weighs 0.5
    np.testing.assert_allclose(out[0, 0], [0.5, 0.5, 0.75], atol=1e-6)
    np.testing.assert_allclose(out[0, 1], [0.75, 0.5, 0.5], atol=1e-6)
    with pytest.raises(ValueError, match="resize the CAM"):
        overlay_cam(img, np.zeros((3, 3)))


def test_boxes_are_drawn_around_inclusive_pixels():
    fig, ax = plt.subplots()
    plot_localization(ax, np.zeros((8, 8, 3)), np.eye(8), gt_boxes=[[1, 2, 5, 6]],
                      pred_boxes=[0, 0, 3, 3], title="x")
    gt, pred = ax.patches
    assert gt.get_xy() == (0.5, 1.5) and gt.get_width() == 5 and gt.get_height() == 5
    assert gt.get_edgecolor()[:3] == (1.0, 0.0, 0.0)  # red
    assert pred.get_edgecolor()[:3] == (0.0, 1.0, 0.0)  # green
    plt.close(fig)


def test_save_grid_writes_a_png(tmp_path):
    n, size = 3, 32
    images = np.full((n, size, size, 3), 128, np.uint8)
    cams = np.zeros((n, size, size))
    cams[:, 8:20, 8:20] = 1.0
    path = save_grid(str(tmp_path / "grid.png"), images, cams, [[[4, 4, 20, 20]]] * n,
                     [[8, 8, 20, 20]] * n, titles=["a", "b", "c"], columns=2)
    png = mpimg.imread(path)
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 200
    rgb = png[..., :3]
    red = (rgb[..., 0] > 0.9) & (rgb[..., 1] < 0.2) & (rgb[..., 2] < 0.2)
    green = (rgb[..., 1] > 0.9) & (rgb[..., 0] < 0.2) & (rgb[..., 2] < 0.2)
    assert red.sum() > 50 and green.sum() > 50
    with pytest.raises(ValueError, match="cams must hold one entry per image"):
        save_grid(str(tmp_path / "bad.png"), images, cams[:2], [[[0, 0, 1, 1]]] * n, [None] * n)
    with pytest.raises(ValueError, match="images is empty"):
        save_grid(str(tmp_path / "bad.png"), [], [], [], [])
