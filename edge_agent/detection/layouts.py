"""Output layouts of Ultralytics-style YOLO ONNX exports, and their decoding.

A layout is recognised from the real output shapes of one inference, so
dynamic axes cannot fool it:

    detect    [1, 4+nc, N]          YOLOv8 / YOLO11 / YOLOv5u heads
    segment   [1, 4+nc+nm, N] and protos [1, nm, h, w]   (box part used)
    yolov5    [1, N, 5+nc]          classic YOLOv5: cx cy w h objectness scores
    end2end   [1, K, 6]             x1 y1 x2 y2 score class, NMS already done
                                    (YOLOv10, YOLO26, or exports with nms=True)

Boxes come out in letterboxed network-input pixels as ``xyxy``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

EXPECTED = ("detect [1, 4+nc, N]; segment [1, 4+nc+nm, N] with protos [1, nm, h, w]; "
            "yolov5 [1, N, 5+nc]; end-to-end [1, K, 6]")


class Layout(str, enum.Enum):
    DETECT = "detect"
    SEGMENT = "segment"
    YOLOV5 = "yolov5"
    END2END = "end2end"


class UnsupportedModelError(ValueError):
    """The ONNX file is not a YOLO detector this agent can decode."""


@dataclass(frozen=True)
class OutputSpec:
    layout: Layout
    num_classes: int


def identify(shapes: Sequence[Sequence[int]], num_names: int | None, end2end_hint: bool = False) -> OutputSpec:
    """Work out the layout from the output shapes of one inference.

    Args:
        shapes: shapes of all model outputs, first output first.
        num_names: number of class names known from metadata or config, if any.
        end2end_hint: the model's metadata says it is NMS-free.

    Raises:
        UnsupportedModelError: naming the shapes found and the ones expected.
    """
    found = ", ".join(str(list(s)) for s in shapes) or "no outputs"
    if not shapes or len(shapes[0]) != 3 or shapes[0][0] != 1:
        raise UnsupportedModelError(f"unsupported model outputs {found}; expected one of: {EXPECTED}")
    _, a, b = shapes[0]
    protos = next((s for s in shapes[1:] if len(s) == 4), None)
    if b == 6 and (end2end_hint or a <= 1000) and a < 4096:
        return OutputSpec(Layout.END2END, num_names or 0)
    if protos is not None and a < b:
        nm = protos[1]
        nc = a - 4 - nm
        if nc >= 1 and (num_names is None or nc == num_names):
            return OutputSpec(Layout.SEGMENT, nc)
    if a < b and a > 4 and (num_names is None or a - 4 == num_names):
        return OutputSpec(Layout.DETECT, a - 4)
    if b < a and b > 5 and (num_names is None or b - 5 == num_names):
        return OutputSpec(Layout.YOLOV5, b - 5)
    hint = f" with {num_names} class names" if num_names is not None else ""
    raise UnsupportedModelError(f"unsupported model outputs {found}{hint}; expected one of: {EXPECTED}")


@dataclass(frozen=True)
class Candidates:
    """Boxes before NMS, in network-input pixels."""

    xyxy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int64]


def _cxcywh_to_xyxy(b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


def decode(spec: OutputSpec, output: npt.NDArray[np.floating], conf: float,
           keep: npt.NDArray[np.bool_] | None) -> Candidates:
    """Turn the first model output into candidate boxes scoring above ``conf``.

    Args:
        spec: the identified layout.
        output: first output, batch of one.
        conf: boxes must score strictly above this (as Ultralytics does).
        keep: (nc,) mask of classes to keep, or None for all.
    """
    out = output[0]
    if spec.layout is Layout.END2END:
        rows = out.astype(np.float32, copy=False)
        cls = rows[:, 5].astype(np.int64)
        mask = rows[:, 4] > conf
        if keep is not None:
            mask &= (cls >= 0) & (cls < len(keep))
            mask[mask] = keep[cls[mask]]
        return Candidates(rows[mask, :4].copy(), rows[mask, 4].copy(), cls[mask])
    if spec.layout is not Layout.YOLOV5:  # DETECT and SEGMENT: channels first, one column per anchor
        chans = out.astype(np.float32, copy=False)
        scores = chans[4:4 + spec.num_classes]
        kept = np.flatnonzero(keep) if keep is not None else None
        if kept is not None:
            scores = scores[kept]
        # best score of each anchor over contiguous rows first; the argmax only for the few above conf
        best = scores.max(axis=0) if len(scores) else np.zeros(scores.shape[1], np.float32)
        mask = best > conf
        cls = scores[:, mask].argmax(axis=0) if len(scores) else np.zeros(int(mask.sum()), np.int64)
        if kept is not None and len(kept):
            cls = kept[cls]
        return Candidates(_cxcywh_to_xyxy(chans[:4, mask].T).astype(np.float32), best[mask].astype(np.float32),
                          cls.astype(np.int64))
    rows = out.astype(np.float32, copy=False)
    scores = rows[:, 5:5 + spec.num_classes] * rows[:, 4:5]
    boxes = rows[:, :4]
    if keep is not None:
        scores = np.where(keep[None, :], scores, 0.0)
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), cls]
    mask = best > conf
    return Candidates(_cxcywh_to_xyxy(boxes[mask]).astype(np.float32), best[mask].astype(np.float32),
                      cls[mask].astype(np.int64))
