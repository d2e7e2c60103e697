"""inference_accel: fast, exact RF-DETR segmentation."""
__version__ = "0.1.0"
