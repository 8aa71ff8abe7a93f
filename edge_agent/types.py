"""The data that flows through a camera node, one type per step.

    Frame ──detect──▶ Detections ──track──▶ Tracks ──analyse──▶ FrameEvents
          ──aggregate──▶ IntervalRecord ──encode──▶ Message

``FrameEvents`` is what one frame's tracks produced: line crossings, completed
turning movements, incidents and the state of every zone (occupancy, queue).

Array-valued types are struct-of-arrays dataclasses validated at construction,
so a stage that produces a bad shape fails where it does so, not three stages
later. This module imports numpy only; the controller can use it without the
vision stack.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_SPEED_BINS_KMH = (0, 10, 20, 30, 40, 50, 60, 70, 80, 100, 120)

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

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.int64] | slice) -> Tracks:
        """Select rows by boolean mask, integer index array or slice."""
        return Tracks(self.track_id[index], self.xyxy[index], self.confidence[index], self.class_id[index],
                      self.det_index[index], self.velocity[index])

    def anchors(self, anchor: Anchor) -> FloatArray:
        """(n, 2) reference points of the boxes (see :class:`Anchor`)."""
        return anchor_points(self.xyxy, anchor)


def anchor_points(xyxy: npt.NDArray[np.floating], anchor: Anchor) -> FloatArray:
    """(n, 2) reference points of (n, 4) x1, y1, x2, y2 boxes (see :class:`Anchor`)."""
    x1, y1, x2, y2 = np.asarray(xyxy).reshape(-1, 4).T
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
    """A track's anchor crossed a counting line.

    ``speed_kmh`` is the track's ground speed at the crossing (fitted over
    ``statistics.speed_window_s``); None without a calibration or before the
    track has enough history.
    """

    camera_id: str
    line_id: str
    track_id: int
    class_name: str
    direction: Direction
    ts: float
    speed_kmh: float | None = None


@dataclass(frozen=True, slots=True)
class MovementEvent:
    """A track completed a configured turning movement (touched its origin, then its destination)."""

    camera_id: str
    movement_id: str
    track_id: int
    class_name: str
    ts: float


@dataclass(frozen=True, slots=True)
class Incident:
    """Something an operator should know about, published on ``{prefix}/{camera}/events``.

    An incident with a duration is reported twice under one ``incident_id``:
    at its start (``end`` None) and at its end.

    Attributes:
        kind: ``wrong_way``, ``stopped``, ``spillback`` or ``crossing``.
        where: zone or line id.
        confidence: in [0, 1]; the mean detector score of the tracks involved.
        detail: kind-specific numbers (speed, queue length, ...).
    """

    camera_id: str
    incident_id: str
    kind: str
    where: str
    start: float
    end: float | None
    lane: str | None = None
    approach: str | None = None
    class_name: str | None = None
    track_id: int | None = None
    confidence: float = 1.0
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ZoneState:
    """One zone at one frame.

    Attributes:
        zone_id: zone id.
        by_class: class name -> road users whose anchor is inside.
        vehicles: of those, vehicle classes.
        queued: vehicles slower than the queue threshold.
        queue_m: distance from the stop line of the farthest queued vehicle
            (None without calibration and stop line, 0.0 for no queue).
        near: vehicles within ``near_stop_m`` of the stop line (all vehicles
            in the zone when that cannot be measured).
        speed_sum_kmh: sum of the ground speeds of vehicles inside with a
            known speed, and ``speed_n`` how many (for the space-mean speed).
        dwell_s: dwell times of the tracks that left the zone at this frame.
    """

    zone_id: str
    by_class: Mapping[str, int]
    vehicles: int
    queued: int
    queue_m: float | None
    near: int
    speed_sum_kmh: float = 0.0
    speed_n: int = 0
    dwell_s: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class FrameEvents:
    """Everything the analytics made of one frame's tracks."""

    ts: float
    crossings: tuple[CrossingEvent, ...] = ()
    movements: tuple[MovementEvent, ...] = ()
    incidents: tuple[Incident, ...] = ()
    zones: tuple[ZoneState, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeedStats:
    """Spot speeds of vehicles over an interval, km/h.

    Attributes:
        n: vehicles with a measured speed.
        space_mean: harmonic mean of the spot speeds (the space-mean speed).
        time_mean: arithmetic mean (the time-mean speed).
        p85: 85th percentile (linear interpolation).
        histogram: counts per bin of ``statistics.speed_bins_kmh``; the last bin is open-ended.
        over_limit: vehicles faster than ``statistics.speed_limit_kmh`` (None when no limit is set).
    """

    n: int
    space_mean: float | None
    time_mean: float | None
    p85: float | None
    min: float | None
    max: float | None
    histogram: tuple[int, ...]
    over_limit: int | None


@dataclass(frozen=True, slots=True)
class LineCounts:
    """Counts of one line over one interval: direction -> class name -> count."""

    line_id: str
    counts: Mapping[Direction, Mapping[str, int]]
    speeds: SpeedStats | None = None
    lane: str | None = None
    approach: str | None = None

    def total(self, direction: Direction | None = None) -> int:
        dirs = [direction] if direction is not None else list(self.counts)
        return sum(sum(self.counts.get(d, {}).values()) for d in dirs)


@dataclass(frozen=True, slots=True)
class ZoneStats:
    """One zone over one interval (means are over the processed frames).

    Attributes:
        occupancy: class name -> (current, mean, max) road users inside.
        occupancy_pct: share of frames with at least one vehicle inside, in %.
        density_veh_km: mean vehicles inside per km of zone length (None without a length).
        queue_veh: (mean, max) queued vehicles; ``queue_m`` the same in metres (None without calibration).
        dwell_s: (n, mean, max) dwell times of the tracks that left the zone in the interval.
        speed_kmh: space-mean speed of vehicles in the zone (None without calibration or vehicles).
    """

    zone_id: str
    lane: str | None
    approach: str | None
    occupancy: Mapping[str, tuple[int, float, int]]
    occupancy_pct: float | None
    density_veh_km: float | None
    queue_veh: tuple[float, int] | None
    queue_m: tuple[float, float] | None
    dwell_s: tuple[int, float | None, float | None]
    speed_kmh: float | None


@dataclass(frozen=True, slots=True)
class LaneStats:
    """One lane over one interval, from the lines and zones tagged with it.

    Attributes:
        volume: vehicles that crossed the lane's lines (either direction).
        flow_veh_h: volume scaled to an hour of observed time.
        headway_s: (n, mean, min) gaps between successive vehicles on the lane's first line.
        occupancy_pct, density_veh_km, queue_veh: from the lane's first zone.
        speeds: spot speeds at the lane's lines.
    """

    lane_id: str
    approach: str | None
    volume: int
    flow_veh_h: float | None
    headway_s: tuple[int, float | None, float | None]
    occupancy_pct: float | None
    density_veh_km: float | None
    queue_veh: tuple[float, int] | None
    speeds: SpeedStats | None


@dataclass(frozen=True, slots=True)
class DataQuality:
    """How much of an interval the numbers cover.

    Attributes:
        observed_s: seconds of the interval covered by the source.
        frames_expected: frames the source should have delivered in ``observed_s``
            at its nominal rate (after ``fps_cap``); None when unknown.
        online_s: seconds covered by frames no more than ``gap_s`` apart.
    """

    observed_s: float
    frames_expected: int | None
    online_s: float


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
        zones, lanes: per zone and per lane, in configuration order.
        movements: movement id -> class name -> count (every configured movement listed).
        quality: coverage of the interval.
        revision: 0 for the first record of an interval; a late correction is
            a new record with the next revision (a closed record never changes).
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
    zones: tuple[ZoneStats, ...] = ()
    lanes: tuple[LaneStats, ...] = ()
    movements: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    quality: DataQuality | None = None
    revision: int = 0

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
