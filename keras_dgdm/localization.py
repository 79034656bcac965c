"""The box search's former module: its public names now live in ``keras_dgdm.boxes``."""
from keras_dgdm.boxes import (  # noqa: F401
    best_iou_curve,
    best_iou_curves,
    box_from_cam,
    boxes_at_thresholds,
    cam_thresholds,
    quantize_cam,
    validate_cam,
)

__all__ = ["quantize_cam", "cam_thresholds", "boxes_at_thresholds", "box_from_cam",
           "best_iou_curve", "best_iou_curves", "validate_cam"]
