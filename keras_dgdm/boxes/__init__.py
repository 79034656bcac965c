"""Boxes: their conventions, and boxes from CAMs by the reference evaluator's rules.

* ``conventions``: boxes ``(x0, y0, x1, y1)`` with inclusive corners and the +1 pixel IoU; CAM
  quantisation and thresholds; the cv2 rules a box from a CAM follows (defined there, once).
* ``search``: the boxes of every CAM threshold and their best IoU with the GT boxes, from one
  numba sweep per CAM (``_sweep``, ``_components``, ``_tables``); the hot path of
  ``keras_dgdm.metrics``.
* ``graph``: the same box in ``keras.ops``, batched, for the SavedModel (imported on its own:
  it needs a Keras backend, the rest of this package only numpy and numba).
"""
from keras_dgdm.boxes.conventions import (
    PAD_VALUE,
    cam_thresholds,
    from_normalized_yxyx,
    iou,
    quantize_cam,
    scale_boxes,
    strip_padding,
    validate_boxes,
    validate_cam,
)
from keras_dgdm.boxes.search import best_iou_curve, best_iou_curves, box_from_cam, boxes_at_thresholds

__all__ = [
    "PAD_VALUE", "validate_boxes", "strip_padding", "iou", "from_normalized_yxyx", "scale_boxes",
    "cam_thresholds", "validate_cam", "quantize_cam",
    "boxes_at_thresholds", "box_from_cam", "best_iou_curve", "best_iou_curves",
]
