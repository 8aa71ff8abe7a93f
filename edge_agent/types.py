"""The data that flows through a camera node, one type per step.

    Frame ──detect──▶ Detections ──track──▶ Tracks ──count──▶ CrossingEvent
          ──aggregate──▶ IntervalRecord ──encode──▶ Message

Array-valued types are struct-of-arrays dataclasses validated at construction,
so a stage that produces a bad shape fails where it does so, not three stages
later. This module imports numpy only; the controller can use it without the
vision stack.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def _check_rows(name: str, value: np.ndarray, n: int, width: int | None = None) -> None:
    expected: tuple[int, ...] = (n,) if width is None else (n, width)
    if value.shape != expected:
        raise ValueError(f"{name} must have shape {expected}, got {value.shape}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded image from a camera.

    Attributes:
        camera_id: id of the camera in the configuration.
        seq: index of the frame in its source (0-based, counts every decoded frame).
        ts: capture time, seconds since the Unix epoch (UTC). For file sources
            this is the configured start time plus the video's own timestamp.
        image: (h, w, 3) uint8 BGR pixels.
    """

    camera_id: str
    seq: int
    ts: float
    image: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or img.size == 0:
            raise ValueError(
                f"camera {self.camera_id!r} frame {self.seq}: expected a non-empty (h, w, 3) uint8 "
                f"image, got shape {img.shape} dtype {img.dtype}"
            )


@dataclass(frozen=True, slots=True)
class Detections:
    """Object detections of one frame, in frame pixels.

    Attributes:
        xyxy: (n, 4) float32 boxes as x1, y1, x2, y2.
        confidence: (n,) float32 scores in [0, 1].
        class_id: (n,) int64 class indices of the detector's class list.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        _check_rows("xyxy", self.xyxy, n, 4)
        _check_rows("confidence", self.confidence, n)
        _check_rows("class_id", self.class_id, n)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
        )

    @classmethod
    def from_arrays(cls, xyxy: Any, confidence: Any, class_id: Any) -> Detections:
        """Build from any array-likes, converting dtypes."""
        return cls(
            xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4),
            confidence=np.asarray(confidence, np.float32).reshape(-1),
            class_id=np.asarray(class_id, np.int64).reshape(-1),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.int64] | slice) -> Detections:
        """Select rows by boolean mask, integer index array or slice."""
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index])


@dataclass(frozen=True, slots=True)
class Tracks:
    """Confirmed tracks reported for one frame.

    Attributes:
        track_id: (n,) int64 ids, unique per camera for the life of the process.
        xyxy: (n, 4) float32 filtered boxes in frame pixels.
        confidence: (n,) float32 score of the detection matched this frame
            (0 for a track coasting without a match).
        class_id: (n,) int64 class of the track (majority over its matches).
        det_index: (n,) int64 row of the matched detection in the frame's
            Detections, or -1 for a track coasting without a match.
        velocity: (n, 2) float32 box-centre velocity in pixels per second.
    """

    track_id: IntArray
    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    det_index: IntArray
    velocity: FloatArray

    def __post_init__(self) -> None:
        n = len(self.track_id)
        _check_rows("track_id", self.track_id, n)
        _check_rows("xyxy", self.xyxy, n, 4)
        _check_rows("confidence", self.confidence, n)
        _check_rows("class_id", self.class_id, n)
        _check_rows("det_index", self.det_index, n)
        _check_rows("velocity", self.velocity, n, 2)

    @classmethod
    def empty(cls) -> Tracks:
        return cls(
            track_id=np.zeros(0, np.int64),
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            det_index=np.zeros(0, np.int64),
            velocity=np.zeros((0, 2), np.float32),
        )

    def __len__(self) -> int:
        return len(self.track_id)

    def anchors(self, anchor: Anchor) -> FloatArray:
        """(n, 2) reference points of the boxes (see :class:`Anchor`)."""
        x1, y1, x2, y2 = self.xyxy.T
        cx = (x1 + x2) / 2
        y = {Anchor.BOTTOM_CENTER: y2, Anchor.CENTER: (y1 + y2) / 2, Anchor.TOP_CENTER: y1}[anchor]
        return np.stack([cx, y], axis=1).astype(np.float32)


class Anchor(str, enum.Enum):
    """Point of a box that is tested against lines and zones.

    Bottom-centre is where a vehicle or person touches the road, which is the
    plane the lines are drawn on.
    """

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"


class Direction(str, enum.Enum):
    """Direction of a line crossing relative to the line's configured "in" side."""

    IN = "in"
    OUT = "out"


@dataclass(frozen=True, slots=True)
class CrossingEvent:
    """A track's anchor crossed a counting line."""

    camera_id: str
    line_id: str
    track_id: int
    class_name: str
    direction: Direction
    ts: float


@dataclass(frozen=True, slots=True)
class LineCounts:
    """Counts of one line over one interval: direction -> class name -> count."""

    line_id: str
    counts: Mapping[Direction, Mapping[str, int]]

    def total(self, direction: Direction | None = None) -> int:
        dirs = [direction] if direction is not None else list(self.counts)
        return sum(sum(self.counts.get(d, {}).values()) for d in dirs)


@dataclass(frozen=True, slots=True)
class IntervalRecord:
    """Aggregated statistics of one camera over one clock-aligned interval.

    Attributes:
        camera_id: camera id.
        start: interval start, timezone-aware UTC.
        end: interval end (exclusive), timezone-aware UTC.
        partial: True when the interval was cut short (shutdown, end of file).
        lines: per counting line, in configuration order.
        frames_processed: frames that went through detection in the interval.
        frames_dropped: frames read but skipped (fps cap, overload, decode errors).
        inference_ms_mean: mean detector time per processed frame, None if none.
        observed_s: seconds of the interval during which the source was
            running (less than the interval when the source started late or
            stopped early).
    """

    camera_id: str
    start: datetime
    end: datetime
    partial: bool
    lines: tuple[LineCounts, ...]
    frames_processed: int
    frames_dropped: int
    inference_ms_mean: float | None
    observed_s: float

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Message:
    """A JSON document addressed to an MQTT topic.

    The spool adds ``message_id`` and ``seq`` and serialises it when it is queued.
    """

    topic: str
    doc: Mapping[str, Any]
    qos: int = 1
    retain: bool = False
