"""``scripts/dequantize_int8.py``: the benchmarks' fp32 YOLOv8n, from the shared int8 one."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import ROOT, shared_file
from dynamic_model import red_box_model
from edge_agent.detection import Detector
from edge_agent.tracking import iou_matrix

onnx = pytest.importorskip("onnx")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("dequantize_int8", ROOT / "scripts" / "dequantize_int8.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dequantize_int8", mod)
    spec.loader.exec_module(mod)
    return mod


def test_the_dequantized_yolov8n_is_fp32_throughout_and_finds_what_the_int8_one_finds(tmp_path: Path) -> None:
    src = shared_file("models/yolov8n_int8.onnx")
    dst = tmp_path / "yolov8n_fp32.onnx"
    assert _script().dequantize(src, dst) == 64
    model = onnx.load(str(dst))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == 64
    assert not {"ConvInteger", "DynamicQuantizeLinear", "Cast"} & set(ops)
    weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    assert len(weights) == 64 and {t.data_type for t in weights} == {onnx.TensorProto.FLOAT}
    assert {p.key: p.value for p in model.metadata_props}["names"].startswith("{0: 'person'")

    int8, fp32 = Detector(src, 0.25, 0.7, device="cpu"), Detector(dst, 0.25, 0.7, device="cpu")
    assert fp32.names == int8.names and fp32.input_size == (640, 640)
    cap = cv2.VideoCapture(str(shared_file("data/vtest.avi")))
    images = [cv2.imread(str(shared_file("data/bus.jpg")))] + [cap.read()[1] for _ in range(3)]
    cap.release()
    for img in images:
        a, b = int8(img), fp32(img)
        assert len(a) >= 4 and len(b) == len(a)
        iou = iou_matrix(a.xyxy, b.xyxy)
        match = iou.argmax(axis=1)
        assert len(set(match.tolist())) == len(a)                    # one-to-one
        assert iou.max(axis=1).min() > 0.9
        assert (b.class_id[match] == a.class_id).all()
        assert np.abs(b.confidence[match] - a.confidence).max() < 0.1  # activations are no longer rounded


def test_a_model_that_is_not_dynamically_quantized_is_refused(tmp_path: Path) -> None:
    mod = _script()
    with pytest.raises(mod.NotDynamicInt8Error, match="no ConvInteger"):
        mod.dequantize(red_box_model(tmp_path / "red.onnx"), tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
