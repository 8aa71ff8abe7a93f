"""Traffic-camera edge agent: YOLO on ONNX Runtime -> tracks -> line counts -> interval statistics over MQTT."""

__version__ = "0.1.0"
