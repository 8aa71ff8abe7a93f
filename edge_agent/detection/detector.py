"""YOLO detection with ONNX Runtime: letterbox, inference, decode, NMS, boxes in frame pixels.

The only module that imports onnxruntime. Pre- and post-processing follow
Ultralytics' predictor for a fixed-shape ONNX model (centred letterbox padded
with grey 114, linear resize, class-aware NMS), so the same file gives the
same boxes here as in Ultralytics; tests check that against fixtures that
Ultralytics itself produced. A model with dynamic height and width is run, as
Ultralytics runs it, at the frame's aspect padded only to the stride ("rect"
shapes): a 768x576 frame becomes 640x480 instead of 640x640.
"""

from __future__ import annotations

import ast
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge_agent.detection.layouts import Layout, OutputSpec, UnsupportedModelError, decode, identify
from edge_agent.types import Detections

log = logging.getLogger(__name__)

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
}
AUTO_ORDER = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
              "CPUExecutionProvider"]
PAD_VALUE = 114
MAX_NMS = 30000
MAX_DET = 300


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the network input: ``x_in = x * gain_x + pad_x`` (same for y).

    The two gains differ slightly because the resized size is rounded to whole pixels.
    """

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def _fitted(frame_hw: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a frame of ``frame_hw`` resized, keeping its aspect ratio, to fit in ``size``."""
    h, w = frame_hw
    gain = min(size[0] / h, size[1] / w)
    return max(round(h * gain), 1), max(round(w * gain), 1)


def _placement(frame_hw: tuple[int, int], size: tuple[int, int],
               shape: tuple[int, int] | None) -> tuple[int, int, int, int, int, int]:
    """Where a frame goes in the network input: resized (height, width) and padding top, bottom, left, right."""
    th, tw = shape or size
    nh, nw = _fitted(frame_hw, size)
    dw, dh = (tw - nw) / 2, (th - nh) / 2
    return nh, nw, round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)


def letterbox(image: npt.NDArray[np.uint8], size: tuple[int, int],
              shape: tuple[int, int] | None = None) -> tuple[npt.NDArray[np.uint8], Letterbox]:
    """Resize keeping aspect ratio to fit in ``size`` = (height, width) and pad, centred, to ``shape``.

    ``shape`` (default ``size``) is at least the resized frame: for rect shapes it is smaller than
    ``size`` (see :meth:`Detector.input_shape_for`), while the resize still follows ``size``, so that
    rounding in the padded side cannot change the gain.
    """
    h, w = image.shape[:2]
    nh, nw, top, bottom, left, right = _placement((h, w), size, shape)
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return padded, Letterbox(nw / w, nh / h, left, top)


def nms(xyxy: npt.NDArray[np.float32], score: npt.NDArray[np.float32], class_id: npt.NDArray[np.int64],
        iou: float) -> npt.NDArray[np.int64]:
    """Class-aware non-maximum suppression; indices of kept boxes, best first."""
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), class_id.tolist(), 0.0, iou)
    kept = np.asarray(kept, np.int64).reshape(-1)
    return kept[np.argsort(-score[kept], kind="stable")]


def _metadata(session: ort.InferenceSession) -> dict[str, str]:
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # noqa: BLE001 - metadata is optional
        return {}


def _parse_names(raw: str) -> list[str] | None:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value)]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return None


def choose_providers(device: str) -> list[str]:
    """Execution providers for ``device``, keeping only those this onnxruntime build has.

    A missing accelerator is logged and CPU is used instead.
    """
    available = ort.get_available_providers()
    wanted = [p for p in AUTO_ORDER if p in available] if device == "auto" else PROVIDERS[device]
    chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    if device != "auto" and chosen[0] != wanted[0]:
        log.warning("model.device=%s asks for %s, which this onnxruntime build lacks (available: %s); "
                    "falling back to %s", device, wanted[0], ", ".join(available), chosen[0])
    return chosen


class Detector:
    """A YOLO ONNX model, called on BGR frames.

    Args:
        model_path: ONNX file.
        confidence: keep boxes scoring above this.
        iou: NMS IoU threshold.
        classes: class names to keep (None: all).
        names: class names for a model without Ultralytics metadata.
        input_size: (height, width) for a model with dynamic input; with rect shapes the largest input.
        device: ``auto``, ``cpu``, ``cuda``, ``tensorrt`` or ``openvino``.
        threads: ONNX Runtime intra-op threads (None: ONNX Runtime's default).
        inter_op_threads: ONNX Runtime inter-op threads (None: ONNX Runtime's default).
        spinning: let ONNX Runtime's threads busy-wait between operators (None: ONNX Runtime's
            default, which spins). Spinning threads take cores from any other work on the box.
        rect: letterbox each frame to its own aspect, padded only up to a multiple of the stride
            (Ultralytics' ``LetterBox(auto=True)``), instead of to the whole ``input_size``. Needs dynamic
            input height and width; None: whenever the model has them.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsupportedModelError: the file is not an ONNX YOLO model of a known layout.
        ValueError: a class name in ``classes`` is unknown to the model, or ``rect`` is asked of a
            model with a fixed input height or width.
    """

    def __init__(self, model_path: str | os.PathLike[str], confidence: float = 0.25, iou: float = 0.7,
                 classes: Sequence[str] | None = None, names: Sequence[str] | None = None,
                 input_size: int | tuple[int, int] | None = None, device: str = "auto",
                 threads: int | None = None, inter_op_threads: int | None = None, spinning: bool | None = None,
                 rect: bool | None = None):
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {confidence}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou}")
        if device not in PROVIDERS and device != "auto":
            raise ValueError(f"device must be one of auto, {', '.join(PROVIDERS)}; got {device!r}")
        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        self.confidence = confidence
        self.iou = iou
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        if inter_op_threads:
            opts.inter_op_num_threads = inter_op_threads
        if spinning is not None:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
        opts.log_severity_level = 3
        self._opts, self._device = opts, device
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                providers=choose_providers(device))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise UnsupportedModelError(f"{self.path}: not a loadable ONNX model ({exc})") from None
        self.sessions = [self.session]  # one per inference stream (open_streams)
        self.providers = self.session.get_providers()
        self.metadata = _metadata(self.session)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            found = ", ".join(f"{i.name}{list(i.shape)}" for i in inputs)
            raise UnsupportedModelError(f"{self.path}: expected one image input [1, 3, H, W], found {found}")
        self.input_name = inputs[0].name
        self.input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        self._batch_dim = inputs[0].shape[0]
        self._batch_ok: bool | None = None
        self.input_size = self._input_size(inputs[0].shape, input_size)
        self.rect = self._rect(inputs[0].shape, rect)
        stride = self.metadata.get("stride", "")  # Ultralytics writes the largest stride, e.g. "32"
        self.stride = int(stride) if stride.isdigit() and int(stride) > 0 else 32
        meta_names = _parse_names(self.metadata.get("names", ""))
        self.names: list[str] = list(names) if names else (meta_names or [])
        self.task = self.metadata.get("task", "detect")
        end2end = self.metadata.get("end2end", "").lower() == "true" or self.metadata.get("nms", "") == "True"
        shapes = [o.shape for o in self.session.run(None, {self.input_name: self._blank()})]
        self.spec: OutputSpec = identify(shapes, len(self.names) if self.names else None, end2end)
        if not self.names:
            self.names = [f"class{i}" for i in range(self.spec.num_classes)]
        if self.spec.layout is Layout.END2END and self.spec.num_classes == 0:
            self.spec = OutputSpec(Layout.END2END, len(self.names))
        self.keep: npt.NDArray[np.bool_] | None = None
        if classes:
            self.set_classes(classes)
        self.last_inference_ms = 0.0

    def set_classes(self, classes: Sequence[str] | None) -> None:
        """Keep only these class names (None: all).

        Raises:
            ValueError: a name is not a class of the model.
        """
        if not classes:
            self.keep = None
            return
        unknown = [c for c in classes if c not in self.names]
        if unknown:
            raise ValueError(f"classes {unknown} are not classes of {self.path.name}; known: {', '.join(self.names)}")
        self.keep = np.isin(np.asarray(self.names), list(classes))

    def _input_size(self, shape: Sequence[Any], wanted: int | tuple[int, int] | None) -> tuple[int, int]:
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            fixed = (h, w)
            if wanted is not None and (wanted if isinstance(wanted, tuple) else (wanted, wanted)) != fixed:
                log.warning("%s has a fixed input %s; model.input_size=%s ignored", self.path.name, fixed, wanted)
            return fixed
        if wanted is not None:
            return wanted if isinstance(wanted, tuple) else (wanted, wanted)
        imgsz = _parse_names(self.metadata.get("imgsz", ""))
        if imgsz and len(imgsz) == 2:
            return int(imgsz[0]), int(imgsz[1])
        return 640, 640

    def _rect(self, shape: Sequence[Any], wanted: bool | None) -> bool:
        h, w = shape[2], shape[3]
        dynamic = not (isinstance(h, int) and h > 0) and not (isinstance(w, int) and w > 0)
        if wanted and not dynamic:
            raise ValueError(f"{self.path}: rect input shapes need a model with dynamic input height and width; "
                             f"its input is fixed at [{', '.join(str(d) for d in shape)}]")
        return dynamic if wanted is None else wanted

    def _blank(self) -> npt.NDArray[np.floating]:
        return np.zeros((1, 3, *self.input_size), self.input_dtype)

    def input_shape_for(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """Network input (height, width) for a frame of ``frame_hw`` = (height, width).

        ``input_size``, or with rect shapes the frame resized to fit in it and padded by the rest
        of ``input_size`` modulo the stride: up to the next multiple of the stride, as Ultralytics
        does for a dynamic-shape model. Fewer pixels to infer ((480, 640) instead of (640, 640) for
        a 4:3 frame), and frames of one size always get one shape.
        """
        if not self.rect:
            return self.input_size
        th, tw = self.input_size
        nh, nw = _fitted(frame_hw, self.input_size)
        return nh + (th - nh) % self.stride, nw + (tw - nw) % self.stride

    def preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.floating], Letterbox]:
        """BGR frame -> (1, 3, H, W) RGB tensor in [0, 1] and the letterbox used (H, W: :meth:`input_shape_for`)."""
        h, w = image.shape[:2]
        th, tw = self.input_shape_for((h, w))
        nh, nw, top, _, left, _ = _placement((h, w), self.input_size, (th, tw))
        fitted = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        # the letterbox straight into the tensor: the padding as its value in [0, 1], the frame one
        # contiguous plane at a time (BGR -> RGB by plane order), divided (not multiplied by 1/255):
        # bit-identical to Ultralytics' letterbox then division. No padded copy of the frame: 0.92-0.93 ms
        # against 1.02-1.07 per vtest frame (scripts/stage_cpu.py, preprocess)
        blob = np.empty((1, 3, th, tw), np.float32)
        inside = blob[0, :, top:top + nh, left:left + nw]
        pad = np.float32(PAD_VALUE) / np.float32(255)
        blob[0, :, :top] = blob[0, :, top + nh:] = pad
        blob[0, :, top:top + nh, :left] = blob[0, :, top:top + nh, left + nw:] = pad
        for rgb, plane in zip((2, 1, 0), cv2.split(fitted)):
            np.divide(plane, np.float32(255), out=inside[rgb], dtype=np.float32)
        return blob.astype(self.input_dtype, copy=False), Letterbox(nw / w, nh / h, left, top)

    def batch_capacity(self, wanted: int) -> int:
        """How many frames one :meth:`infer` call may take, at most ``wanted``.

        More than one only when the model's batch dimension is dynamic and frames in one batch do
        not influence each other. Dynamically quantized models (``DynamicQuantizeLinear``, as in
        ``yolov8n_int8.onnx``) fail that check: their activation scale is computed over the whole
        batch, so a frame's boxes would depend on the other cameras' frames. Checked once, on two
        synthetic inputs run together and alone.
        """
        if wanted <= 1 or (isinstance(self._batch_dim, int) and self._batch_dim > 0):
            return 1
        if self._batch_ok is None:
            rng = np.random.default_rng(0)
            pair = np.concatenate([np.full_like(self._blank(), 0.45),
                                   rng.random(self._blank().shape).astype(self.input_dtype)])
            together = self.session.run(None, {self.input_name: pair})[0]
            alone = [self.session.run(None, {self.input_name: pair[i:i + 1]})[0] for i in range(2)]
            scale = max(float(np.abs(a).max()) for a in alone) or 1.0
            self._batch_ok = all(np.allclose(together[i:i + 1], a, rtol=0, atol=1e-4 * scale)
                                 for i, a in enumerate(alone))
            if not self._batch_ok:
                log.info("%s: frames in one batch change each other's outputs (dynamic quantization?); "
                         "inference runs one frame at a time", self.path.name)
        return wanted if self._batch_ok else 1

    def postprocess(self, output: npt.NDArray[np.floating], lb: Letterbox,
                    frame_shape: tuple[int, ...]) -> Detections:
        """First model output -> detections in frame pixels."""
        cand = decode(self.spec, output, self.confidence, self.keep)
        if len(cand.score) > MAX_NMS:
            top = np.argsort(-cand.score)[:MAX_NMS]
            cand = type(cand)(cand.xyxy[top], cand.score[top], cand.class_id[top])
        if self.spec.layout is Layout.END2END:
            order = np.argsort(-cand.score, kind="stable")[:MAX_DET]
        else:
            order = nms(cand.xyxy, cand.score, cand.class_id, self.iou)[:MAX_DET]
        xyxy = cand.xyxy[order].copy()
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - lb.pad_x) / lb.gain_x
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - lb.pad_y) / lb.gain_y
        h, w = frame_shape[:2]
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
        return Detections(xyxy.astype(np.float32), cand.score[order], cand.class_id[order])

    def open_streams(self, n: int) -> None:
        """Have ``n`` sessions of the model (same options), so that ``n`` threads may infer at once."""
        if n < 1:
            raise ValueError(f"streams must be >= 1, got {n}")
        while len(self.sessions) < n:
            self.sessions.append(ort.InferenceSession(str(self.path), sess_options=self._opts,
                                                      providers=choose_providers(self._device)))
        del self.sessions[n:]

    def infer(self, tensor: npt.NDArray[np.floating], stream: int = 0) -> npt.NDArray[np.floating]:
        """Run the network on a preprocessed tensor (in session ``stream``); return its first output."""
        t0 = time.perf_counter()
        out = self.sessions[stream].run(None, {self.input_name: tensor})[0]
        self.last_inference_ms = (time.perf_counter() - t0) * 1000
        return out  # type: ignore[no-any-return]

    def __call__(self, image: npt.NDArray[np.uint8]) -> Detections:
        """Detect objects in one BGR frame."""
        if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise ValueError(f"expected a (h, w, 3) BGR image, got shape {image.shape}")
        tensor, lb = self.preprocess(image)
        return self.postprocess(self.infer(tensor), lb, image.shape)

    def describe(self) -> str:
        return (f"{self.path.name}: {self.spec.layout.value} layout, {len(self.names)} classes, input "
                f"{self.input_size[0]}x{self.input_size[1]}{' at most (rect)' if self.rect else ''} "
                f"{np.dtype(self.input_dtype).name}, "
                f"providers {', '.join(self.providers)}")


__all__ = ["Detector", "Letterbox", "UnsupportedModelError", "letterbox", "nms", "choose_providers"]
