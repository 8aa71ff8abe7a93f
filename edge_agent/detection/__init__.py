"""Frame -> Detections: YOLO models through ONNX Runtime."""

from edge_agent.detection.detector import Detector, Letterbox, choose_providers, letterbox, nms
from edge_agent.detection.layouts import Layout, UnsupportedModelError

__all__ = ["Detector", "Layout", "Letterbox", "UnsupportedModelError", "choose_providers", "letterbox", "nms"]
