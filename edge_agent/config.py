"""YAML configuration of a camera node, validated into typed models.

Every section is a pydantic model that refuses unknown keys, so a typo fails
at start instead of silently falling back to a default. Errors are reported as
``FILE:LINE: yaml.path[0].field: problem, got VALUE`` (see :class:`ConfigError`).

Relative paths (model file, video files, TLS files, password file) are taken
relative to the directory of the YAML file, so a configuration can be moved
together with its data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_agent.geometry import GroundPlane, polygon_area, polygon_self_intersects
from edge_agent.types import DEFAULT_SPEED_BINS_KMH, Anchor

M = TypeVar("M", bound=BaseModel)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ID_RULE = "1-64 characters of letters, digits, '_', '.', '-' (it becomes part of MQTT topics)"
DEFAULT_FILE_START = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ConfigError(ValueError):
    """A configuration file was refused. ``problems`` holds one line per problem."""

    def __init__(self, path: Path | str, problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"invalid configuration {self.path}:\n  " + "\n  ".join(self.problems))


def _point(value: Any) -> tuple[float, float]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise ValueError("expected [x, y] with 2 numbers")
    x, y = float(value[0]), float(value[1])
    if x < 0 or y < 0:
        raise ValueError("expected [x, y] in image pixels (x >= 0, y >= 0)")
    return (x, y)


Point = Annotated[tuple[float, float], BeforeValidator(_point)]


class Section(BaseModel):
    """Base of every configuration section: unknown keys are refused, models are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSConfig(Section):
    ca: Path = Field(description="CA certificate (PEM) that signed the broker's certificate")
    cert: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key: Path | None = Field(None, description="client private key (PEM) for mutual TLS")
    insecure: bool = Field(False, description="skip the broker host name check (testing only)")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TLSConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key must be given together for mutual TLS")
        return self


class MQTTConfig(Section):
    host: str = Field("localhost", min_length=1, description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field(
        "edge-agent", pattern=ID_PATTERN, description="prefix of the MQTT client ids; one client per camera"
    )
    topic_prefix: str = Field("traffic", min_length=1, description="first topic level(s), e.g. city/district")
    keepalive: int = Field(30, ge=5, le=3600, description="seconds")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    username: str | None = None
    password_env: str | None = Field(None, description="name of the environment variable holding the password")
    password_file: Path | None = Field(None, description="file whose first line is the password")
    tls: TLSConfig | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/") or "//" in v:
            raise ValueError("expected topic levels like 'traffic' or 'city/north' without '+', '#', leading, "
                             "trailing or double '/'")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_password_in_yaml(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError("'password' is not allowed in the YAML file; name an environment variable with "
                             "password_env or a file with password_file")
        return data

    @model_validator(mode="after")
    def _one_password_source(self) -> MQTTConfig:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    def password(self) -> str | None:
        """Read the password from its environment variable or file (never from the YAML)."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError("<environment>", [f"mqtt.password_env: environment variable "
                                                    f"{self.password_env!r} is not set"])
            return value
        if self.password_file:
            return self.password_file.read_text().splitlines()[0] if self.password_file.stat().st_size else ""
        return None


Device = Literal["auto", "cpu", "cuda", "tensorrt", "openvino"]


class ModelConfig(Section):
    path: Path = Field(description="ONNX file exported by Ultralytics (detect, segment or end-to-end head)")
    input_size: int | tuple[int, int] | None = Field(
        None, description="network input [height, width] (or one number for a square) for models with a "
                          "dynamic input; default: the model's metadata, else 640. With rect, the largest input")
    rect: bool | None = Field(
        None, description="letterbox each frame to its own aspect, padded only up to a multiple of the stride "
                          "(a 768x576 frame: 640x480 instead of 640x640), as Ultralytics does; needs a model "
                          "with dynamic height and width. Default: on for such models, off for the others")
    confidence: float = Field(
        0.1, ge=0.0, le=1.0,
        description="minimum detection score; low so that the tracker can use weak detections (second stage)")
    iou: float = Field(0.7, gt=0.0, le=1.0, description="IoU above which NMS suppresses the weaker box")
    classes: list[str] | None = Field(None, min_length=1, description="class names to keep; default all")
    names: list[str] | None = Field(None, min_length=1,
                                    description="class names for a model without Ultralytics metadata")
    device: Device = "auto"
    threads: int | None = Field(None, ge=1, le=256, description="ONNX Runtime intra-op threads per inference "
                                                                   "stream; default: cores / performance.streams")

    @field_validator("input_size")
    @classmethod
    def _size(cls, v: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
        sizes = [v] if isinstance(v, int) else list(v or [])
        for s in sizes:
            if s < 32 or s % 32:
                raise ValueError("expected a multiple of 32 between 32 and 4096")
        return v


class LineConfig(Section):
    """A counting line: the segment p1 -> p2 in image pixels.

    ``in_side`` says which side of the segment is "in", as seen on the image
    when walking from p1 to p2: ``left`` or ``right``. A track whose anchor
    moves across the segment onto that side is counted ``in``; the other way
    is ``out``.
    """

    id: str = Field(pattern=ID_PATTERN)
    p1: Point
    p2: Point
    in_side: Literal["left", "right"] = "right"
    anchor: Anchor = Field(Anchor.BOTTOM_CENTER, description="point of the box tested against the line")
    hysteresis_px: float = Field(
        3.0, ge=0.0, le=200.0,
        description="a track must be this far from the line to be on a side (dead band against jitter)")
    lane: str | None = Field(None, pattern=ID_PATTERN,
                             description="lane this line counts (its volume, headways and speeds go to the lane)")
    approach: str | None = Field(None, pattern=ID_PATTERN, description="approach (arm) of the junction, e.g. north")

    @model_validator(mode="after")
    def _not_degenerate(self) -> LineConfig:
        if self.p1 == self.p2:
            raise ValueError(f"p1 and p2 are the same point {list(self.p1)}; a line needs two distinct points")
        return self


def _ground_point(value: Any) -> tuple[float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok:
        raise ValueError("expected [X, Y] in metres with 2 numbers")
    return (float(value[0]), float(value[1]))


GroundPoint = Annotated[tuple[float, float], BeforeValidator(_ground_point)]


class CalibrationPoint(Section):
    image: Point
    ground: GroundPoint


class CalibrationConfig(Section):
    """Image <-> road-plane calibration: at least 4 point pairs, metres on the ground.

    Measure the ground points on site or on a map (any local x/y frame in
    metres: only distances matter); click the image points on a frame
    (``edge-agent snapshot`` draws the resulting metre grid to check it).
    """

    points: list[CalibrationPoint] = Field(min_length=4, max_length=64)
    max_error_m: float = Field(1.0, gt=0, le=100,
                               description="refuse a calibration whose worst point is off by more than this")

    @model_validator(mode="after")
    def _fits(self) -> CalibrationConfig:
        plane = self.plane()  # raises ValueError naming the problem
        worst = float(plane.errors_m.max())
        if worst > self.max_error_m:
            i = int(plane.errors_m.argmax())
            raise ValueError(f"point {i} is {worst:.2f} m off the fitted road plane (max_error_m: "
                             f"{self.max_error_m}); check its image and ground coordinates")
        return self

    def plane(self) -> GroundPlane:
        return GroundPlane.fit([p.image for p in self.points], [p.ground for p in self.points])


class ZoneConfig(Section):
    """A polygon on the image: occupancy, dwell, and (for a lane zone) queue, density and presence.

    Draw a lane zone over one lane, from the stop line back upstream; set
    ``stop_line`` to measure the queue in metres from it (with a calibration).
    """

    id: str = Field(pattern=ID_PATTERN)
    polygon: list[Point] = Field(min_length=3, max_length=64, description="corners in image pixels")
    lane: str | None = Field(None, pattern=ID_PATTERN, description="lane this zone covers")
    approach: str | None = Field(None, pattern=ID_PATTERN, description="approach (arm) of the junction")
    stop_line: str | None = Field(None, description="id of a line of this camera: queue lengths are measured "
                                                    "from it and presence reports vehicles near it")
    length_m: float | None = Field(None, gt=0, le=10_000,
                                   description="zone length along the lane for density; default: from calibration")
    travel: tuple[Point, Point] | None = Field(
        None, description="[[x, y], [x, y]]: the lane's direction of travel; movement against it is wrong-way")
    no_stopping_s: float | None = Field(
        None, gt=0, le=86400, description="a vehicle stopped in the zone this long raises a stopped-vehicle event")
    spillback_veh: int | None = Field(None, ge=1, le=1000,
                                      description="a queue of this many vehicles raises a spill-back event")
    spillback_m: float | None = Field(None, gt=0, le=10_000,
                                      description="a queue reaching this far from the stop line raises a "
                                                  "spill-back event (needs calibration and stop_line)")

    @model_validator(mode="after")
    def _shape(self) -> ZoneConfig:
        if polygon_area(self.polygon) < 1.0:
            raise ValueError(f"polygon {[list(p) for p in self.polygon]} has no area")
        if polygon_self_intersects(self.polygon):
            raise ValueError("polygon edges cross each other; list the corners in order around the zone")
        if self.travel is not None and self.travel[0] == self.travel[1]:
            raise ValueError("travel needs two distinct points: from where traffic comes to where it goes")
        return self


class MovementConfig(Section):
    """A turning movement: tracks that touch ``from`` and later ``to`` (line or zone ids of the camera)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN)
    from_: str = Field(alias="from", description="entry line or zone id")
    to: str = Field(description="exit line or zone id")


class CameraConfig(Section):
    id: str = Field(pattern=ID_PATTERN)
    reconnect_min_s: float = Field(1.0, gt=0, le=600, description="first wait before reopening a live source")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="longest wait between reopen attempts")
    stall_s: float = Field(10.0, gt=0, le=600,
                           description="a live source that delivers no frame for this long is reopened")
    source: str | int = Field(
        description="video file path, rtsp:// or http(s):// URL, or USB camera index (0, 1, ...)")
    fps_cap: float | None = Field(None, gt=0, le=240, description="process at most this many frames per second")
    weight: float = Field(1.0, gt=0, le=100, description="share of inference when cameras compete for it: a "
                          "camera of weight 2 gets twice the frames of one of weight 1 while both have frames")
    start_time: datetime | None = Field(
        None, description="file sources only: wall-clock time of the first frame (ISO 8601 with zone)")
    realtime: bool = Field(False, description="file sources only: pace reading at the video's frame rate")
    loop: bool = Field(False, description="file sources only: start again at the end (the clock keeps running)")
    lines: list[LineConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    movements: list[MovementConfig] = Field(default_factory=list)
    calibration: CalibrationConfig | None = Field(
        None, description="image <-> ground calibration: speeds in km/h, queues in metres, density")

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v: Any) -> Any:
        if isinstance(v, bool) or (isinstance(v, int) and v < 0):
            raise ValueError("expected a file path, an rtsp:// or http(s):// URL, or a USB index >= 0")
        if isinstance(v, str) and not v.strip():
            raise ValueError("expected a file path, an rtsp:// or http(s):// URL, or a USB index >= 0")
        return v

    @field_validator("start_time")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("expected a time zone, e.g. 2024-05-01T08:00:00Z or 2024-05-01T10:00:00+02:00")
        return v

    @model_validator(mode="after")
    def _backoff_order(self) -> CameraConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(f"reconnect_min_s ({self.reconnect_min_s}) must not exceed reconnect_max_s "
                             f"({self.reconnect_max_s})")
        return self

    @model_validator(mode="after")
    def _unique_lines(self) -> CameraConfig:
        _check_unique([line.id for line in self.lines] + [z.id for z in self.zones], "line or zone id")
        _check_unique([m.id for m in self.movements], "movement id")
        return self

    def references(self) -> list[tuple[tuple[int | str, ...], str]]:
        """Problems of cross-references (stop lines, movements, calibration needs), by YAML path."""
        lines = {line.id for line in self.lines}
        elements = lines | {z.id for z in self.zones}
        out: list[tuple[tuple[int | str, ...], str]] = []
        for i, z in enumerate(self.zones):
            if z.stop_line is not None and z.stop_line not in lines:
                out.append((("zones", i, "stop_line"), f"{z.stop_line!r} is not a line of this camera; "
                                                        f"lines: {', '.join(sorted(lines)) or '(none)'}"))
            if z.spillback_m is not None and (self.calibration is None or z.stop_line is None):
                out.append((("zones", i, "spillback_m"), "a spill-back mark in metres needs a calibration and a "
                                                          "stop_line; use spillback_veh without them"))
        for i, m in enumerate(self.movements):
            for key, ref in (("from", m.from_), ("to", m.to)):
                if ref not in elements:
                    out.append((("movements", i, key), f"{ref!r} is not a line or zone of this camera; known: "
                                                        f"{', '.join(sorted(elements)) or '(none)'}"))
            if m.from_ == m.to:
                out.append((("movements", i, "to"), f"from and to are both {m.to!r}"))
        if self.calibration is not None:
            plane = self.calibration.plane()
            for kind, items in (("lines", [[ln.p1, ln.p2] for ln in self.lines]),
                                ("zones", [list(z.polygon) for z in self.zones])):
                for i, pts in enumerate(items):
                    if np.isnan(plane.to_ground(pts)).any():
                        out.append(((kind, i), "a point lies beyond the horizon of the calibration; "
                                               "keep lines and zones on the road plane"))
        return out

    @property
    def is_file(self) -> bool:
        return isinstance(self.source, str) and "://" not in self.source

    @property
    def clock_start(self) -> datetime:
        """Wall-clock time of a file's first frame."""
        return self.start_time or DEFAULT_FILE_START


class StatisticsConfig(Section):
    interval_s: int | list[int] = Field(
        60, description="interval length in seconds, or several (e.g. [60, 900]): one record per interval each")
    vehicle_classes: list[str] = Field(
        default_factory=lambda: ["car", "motorcycle", "bus", "truck"],
        description="classes that count towards flow in vehicles per hour")
    speed_window_s: float = Field(2.0, gt=0, le=30,
                                  description="speed at a line: fitted over this many seconds centred on the "
                                              "crossing (the crossing is reported half of it later)")
    motion_window_s: float = Field(1.0, gt=0, le=30,
                                   description="current speed (queues, stopped and wrong-way vehicles): fitted "
                                               "over the last this many seconds")
    vehicle_size_m: dict[str, tuple[float, float, float]] = Field(
        default_factory=lambda: {"car": (4.5, 1.8, 1.5), "motorcycle": (2.1, 0.8, 1.4), "bicycle": (1.8, 0.6, 1.6),
                                 "bus": (11.0, 2.5, 3.1), "truck": (8.0, 2.45, 3.2)},
        description="typical length, width and height in metres per class: with a calibration, speeds are "
                    "fitted to the centre of the vehicle's road footprint rather than its box's bottom-centre, "
                    "which slides along a passing vehicle; {} turns it off")
    speed_bins_kmh: list[float] = Field(
        default_factory=lambda: [float(b) for b in DEFAULT_SPEED_BINS_KMH],
        min_length=2, description="edges of the speed histogram, increasing; the last bin is open-ended")
    speed_limit_kmh: float | None = Field(None, gt=0, le=300, description="count vehicles faster than this")
    queue_speed_kmh: float = Field(5.0, ge=0, le=50,
                                   description="a vehicle slower than this is queued (with a calibration)")
    queue_speed_px_s: float = Field(8.0, ge=0, le=1000,
                                    description="the same without calibration, in image pixels per second")
    near_stop_m: float = Field(15.0, gt=0, le=500,
                               description="presence: vehicles this close to the lane's stop line are 'near'")
    grace_s: float = Field(
        3.0, ge=0, le=300, description="an interval is published this long after it ends (at most half its "
                                        "length), so that crossings seen a moment late still land in it")
    presence_s: float = Field(1.0, ge=0, le=60,
                              description="publish per-lane presence this often (seconds of video); 0: off")
    part_inside: float = Field(0.8, gt=0, le=1,
                               description="line counting: a track's box is nested in a frame when at least this "
                                           "share of it lies inside a larger track's box")
    part_share: float = Field(0.8, ge=0, le=1,
                              description="a track nested in at least this share of its frames is a part of "
                                          "another vehicle (a truck's cab boxed as a car) and is not counted; 0: off")
    reverse_s: float = Field(2.0, ge=0, le=60,
                             description="line counting: a vehicle (vehicle_classes) is not counted back over a "
                                         "line this many seconds after it was counted over it (a partly hidden "
                                         "vehicle's box moves back, the vehicle does not); 0: off")

    @field_validator("interval_s")
    @classmethod
    def _divides_day(cls, v: int | list[int]) -> int | list[int]:
        values = [v] if isinstance(v, int) else v
        if not values:
            raise ValueError("expected at least one interval length")
        for x in values:
            if x < 1 or x > 86400 or 86400 % x:
                raise ValueError("expected a divisor of 86400 (e.g. 10, 60, 300, 900, 3600) so that intervals "
                                 "align with the clock")
        if len(set(values)) != len(values):
            raise ValueError("interval lengths must be distinct")
        return v

    @field_validator("speed_bins_kmh")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:])) or v[0] < 0:
            raise ValueError("expected increasing edges >= 0, e.g. [0, 20, 40, 60]")
        return v

    @property
    def intervals(self) -> list[int]:
        """Interval lengths in seconds, shortest first."""
        return sorted([self.interval_s] if isinstance(self.interval_s, int) else self.interval_s)


class EventsConfig(Section):
    """Incident events on ``{prefix}/{camera}/events`` (QoS 1, spooled like statistics)."""

    crossings: bool = Field(False, description="also publish every line crossing as an event")
    wrong_way_s: float = Field(2.0, gt=0, le=60,
                               description="a track must move against a zone's travel direction this long")
    wrong_way_kmh: float = Field(5.0, ge=0, le=100,
                                 description="... at least this fast against it (with a calibration)")
    wrong_way_px_s: float = Field(10.0, ge=0, le=1000,
                                  description="the same without calibration, in image pixels per second")


class TrackerSection(Section):
    """Tracker thresholds; defaults suit 5-30 fps traffic video."""

    high_threshold: float = Field(0.5, ge=0, le=1, description="detections at or above start the first stage")
    low_threshold: float = Field(0.1, ge=0, le=1, description="detections below are ignored")
    new_track_threshold: float = Field(0.5, ge=0, le=1, description="minimum score to start a track")
    match_iou: float = Field(0.2, gt=0, le=1, description="minimum IoU to match a high-score detection")
    low_match_iou: float = Field(0.5, gt=0, le=1, description="minimum IoU to match a low-score detection")
    min_hits: int = Field(2, ge=1, le=100, description="matches on consecutive frames before a track is confirmed")
    max_age_s: float = Field(1.0, gt=0, le=60, description="seconds without a match before a track dies")
    report_misses: int = Field(1, ge=0, le=100, description="missed frames during which a track is still "
                               "reported at its prediction (det_index -1); longer-lost tracks are kept unreported")
    miss_penalty: float = Field(0.25, ge=0, le=10, description="association score divisor per missed frame, "
                                "so recently seen tracks win contested detections")
    coast_min_inside: float = Field(0.75, ge=0, le=1, description="a coasting track is reported only while at "
                                    "least this fraction of its predicted box is inside the image (0: always)")
    birth_max_iou: float = Field(0.6, ge=0, le=1, description="a detection overlapping a tracked one by more IoU "
                                 "than this starts no track (a duplicate box or a second class on one object)")
    class_margin: float = Field(0.25, ge=0, le=1, description="IoU a track must overlap a detection by beyond a "
                                "competing track of the detection's class to take it (0: class is ignored)")
    class_share: float = Field(0.7, ge=0.5, le=1, description="share of a track's recent class votes its class "
                               "needs to count in that tie-break")
    class_memory_s: float = Field(1.0, gt=0, le=60, description="time constant of the fading of those votes")
    keep_iou: float = Field(0.5, gt=0, le=1, description="a track seen in the previous frame keeps a detection "
                            "that it overlaps by at least this IoU, more than any other track, from coasting tracks")


def default_state_dir() -> Path:
    """Where the spool lives by default: systemd's StateDirectory, else ~/.local/state/edge-agent."""
    state = os.environ.get("STATE_DIRECTORY")
    return Path(state.split(":")[0]) if state else Path.home() / ".local" / "state" / "edge-agent"


class SpoolConfig(Section):
    """On-disk store and forward of outgoing messages, one SQLite file per camera."""

    dir: Path = Field(default_factory=default_state_dir, description="directory of the spool files")
    max_mb: float = Field(100.0, gt=0, le=100_000, description="per camera; oldest messages dropped beyond it")
    max_age_h: float = Field(168.0, gt=0, le=24 * 366, description="messages older than this are dropped")
    max_inflight: int = Field(20, ge=1, le=1000, description="unacknowledged QoS 1 messages at most")
    rate: float = Field(50.0, ge=0, le=10_000,
                        description="messages per second at most when sending a backlog (0: unlimited)")
    drain_s: float = Field(30.0, ge=0, le=3600,
                           description="at shutdown, how long to wait for the broker to acknowledge the spool")


class HealthConfig(Section):
    interval_s: float = Field(30.0, ge=1, le=3600, description="how often the health record is published")
    http_host: str = Field("127.0.0.1", description="address of the /metrics and /healthz endpoint")
    http_port: int | None = Field(None, ge=1, le=65535,
                                  description="port of the Prometheus /metrics and /healthz endpoint; off if unset")


class PerformanceConfig(Section):
    """Threads, prefetching and batching. Unset budgets derive from the cores this process may use."""

    inter_op_threads: int = Field(1, ge=1, le=256, description="ONNX Runtime inter-op threads; the graph runs "
                                  "in order and model.threads (intra-op) do the work")
    spinning: bool = Field(False, description="let ONNX Runtime's threads busy-wait between operators: slightly "
                           "faster on an idle box, much slower when decoding or other processes share the cores")
    opencv_threads: int | None = Field(None, ge=0, le=256, description="cv2.setNumThreads; default 1 up to 4 "
                                       "cores, else cores // 4 (frames are already prepared in parallel)")
    prepare_threads: int | None = Field(None, ge=1, le=256, description="frames letterboxed at once over all "
                                        "cameras; default max(1, cores // 2), so inference keeps its cores")
    prefetch: int = Field(0, ge=0, le=16, description="frames a file camera reads and letterboxes ahead in a "
                          "thread of its own; 0: the camera's thread reads and letterboxes each frame as it hands "
                          "it to inference, one busy thread fewer beside inference (measured faster). A live "
                          "camera always has a thread that prepares its newest frame, a realtime file one that "
                          "prepares at least its next frame")
    decode_threads: int = Field(1, ge=0, le=64, description="FFmpeg decoding threads per camera (0: OpenCV's "
                                "default, one per core); one leaves the cores to inference")
    streams: int | None = Field(None, ge=1, le=16, description="inference streams: ONNX Runtime sessions that "
                                "run frames side by side, each with model.threads intra-op threads (default cores "
                                "// streams); frames in parallel need no synchronisation between operators, "
                                "operators in parallel do. Default: 2 when the model runs on the CPU of a box with "
                                "2 or more cores, else 1. A frame's inference takes about streams times as long")
    max_batch: int | None = Field(None, ge=1, le=64, description="frames of different cameras run in one "
                                  "inference call when the model has a dynamic batch; default: cameras, at most 8, "
                                  "divided by the streams (rounded up)")
    batch_wait_ms: float = Field(50.0, ge=0, le=1000, description="how long a batch waits for cameras that "
                                 "usually come back within this time before it runs without them (with one "
                                 "stream, or to fill a batch: with several streams and one frame per call a "
                                 "stream never waits while frames are waiting)")


class AgentConfig(Section):
    mqtt: MQTTConfig = Field(default_factory=MQTTConfig)  # type: ignore[arg-type]
    model: ModelConfig
    statistics: StatisticsConfig = Field(default_factory=StatisticsConfig)  # type: ignore[arg-type]
    tracker: TrackerSection = Field(default_factory=TrackerSection)  # type: ignore[arg-type]
    spool: SpoolConfig = Field(default_factory=SpoolConfig)  # type: ignore[arg-type]
    health: HealthConfig = Field(default_factory=HealthConfig)  # type: ignore[arg-type]
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)  # type: ignore[arg-type]
    events: EventsConfig = Field(default_factory=EventsConfig)  # type: ignore[arg-type]
    cameras: list[CameraConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_cameras(self) -> AgentConfig:
        _check_unique([c.id for c in self.cameras], "camera id")
        return self


def redact(source: str | int) -> str:
    """A camera source with any ``user:password@`` replaced by ``***@``, for logs and messages."""
    return re.sub(r"//[^/@]*@", "//***@", str(source))


def _check_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{what} {i!r} is used twice; ids must be unique")
        seen.add(i)


# ---------------------------------------------------------------- loading


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last)."""


def _mapping_no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)


def format_loc(loc: Sequence[int | str]) -> str:
    """('cameras', 0, 'lines', 1, 'p2') -> 'cameras[0].lines[1].p2'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _model_at(loc: Sequence[int | str], root_model: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at ``loc`` (for listing allowed keys)."""
    tp: Any = root_model
    for part in loc:
        if isinstance(part, int):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if get_origin(tp) in (list, tuple) and args else tp
            continue
        while get_origin(tp) is not None and not isinstance(tp, type):
            args = [a for a in get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
            if not args:
                return None
            tp = args[0]
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)) or part not in tp.model_fields:
            return None
        tp = tp.model_fields[part].annotation
    while get_origin(tp) is not None:
        args = [a for a in get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not args:
            return None
        tp = args[0]
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _clean_loc(loc: Sequence[int | str]) -> list[int | str]:
    """The YAML path of a pydantic error location (without validator-wrapper entries)."""
    return [p for p in loc if not (isinstance(p, str) and "[" in p and p.startswith(("function-", "tuple[")))]


def _describe(err: dict[str, Any], root_model: type[BaseModel]) -> str:
    loc = _clean_loc(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1], root_model)
        allowed = ", ".join(model.model_fields) if model else "?"
        return f"{format_loc(loc)}: unknown key; allowed keys here: {allowed}"
    if err["type"] == "missing":
        return f"{format_loc(loc)}: required field is missing"
    got = err.get("input")
    return f"{format_loc(loc) or '(top level)'}: {msg}, got {got!r}"


def _resolve_paths(cfg: AgentConfig, base: Path) -> AgentConfig:
    """Anchor relative paths at the YAML file's directory."""

    def rel(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    mqtt = cfg.mqtt
    if mqtt.tls is not None:
        tls = mqtt.tls.model_copy(update={k: rel(getattr(mqtt.tls, k)) or getattr(mqtt.tls, k)
                                          for k in ("ca", "cert", "key")})
        mqtt = mqtt.model_copy(update={"tls": tls})
    if mqtt.password_file is not None:
        mqtt = mqtt.model_copy(update={"password_file": rel(mqtt.password_file) or mqtt.password_file})
    model = cfg.model.model_copy(update={"path": rel(cfg.model.path) or cfg.model.path})
    spool = cfg.spool.model_copy(update={"dir": rel(cfg.spool.dir) or cfg.spool.dir})
    cams = [c.model_copy(update={"source": str(base / c.source)}) if c.is_file and isinstance(c.source, str)
            and not Path(c.source).is_absolute() else c for c in cfg.cameras]
    return cfg.model_copy(update={"mqtt": mqtt, "model": model, "spool": spool, "cameras": cams})


def _check_files(cfg: AgentConfig, raw_root: yaml.Node | None) -> list[str]:
    """Files named in the configuration must exist when the agent starts."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    if not cfg.model.path.is_file():
        problems.append((("model", "path"), f"model file not found: {cfg.model.path}"))
    for i, cam in enumerate(cfg.cameras):
        if cam.is_file and not Path(str(cam.source)).is_file():
            problems.append((("cameras", i, "source"), f"video file not found: {cam.source}"))
        if not cam.is_file and (cam.start_time is not None or cam.realtime or cam.loop):
            key = "start_time" if cam.start_time is not None else ("realtime" if cam.realtime else "loop")
            problems.append((("cameras", i, key), "only file sources take start_time, realtime and loop; a "
                                                  "live source uses the wall clock"))
    tls = cfg.mqtt.tls
    if tls is not None:
        for key in ("ca", "cert", "key"):
            p = getattr(tls, key)
            if p is not None and not p.is_file():
                problems.append((("mqtt", "tls", key), f"file not found: {p}"))
    if cfg.mqtt.password_file is not None and not cfg.mqtt.password_file.is_file():
        problems.append((("mqtt", "password_file"), f"file not found: {cfg.mqtt.password_file}"))
    return [f"line {_line_of(raw_root, loc)}: {format_loc(loc)}: {msg}" for loc, msg in problems]


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, path: Path | str = "<string>") -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` with environment variables.

    Lets one file serve several boxes (broker address, camera URLs) without
    editing it. An unset variable without a default is an error naming its line.
    """
    problems = []

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1), m.group(2))
        if value is None:
            line = text[: m.start()].count("\n") + 1
            problems.append(f"line {line}: environment variable {m.group(1)!r} is not set and has no default "
                            f"(write ${{{m.group(1)}:-value}} to give one)")
            return ""
        return value

    out = _ENV_REF.sub(sub, text)
    if problems:
        raise ConfigError(path, problems)
    return out


def read_yaml(text: str, path: Path | str = "<string>") -> tuple[yaml.Node | None, Any]:
    """Expand ``${VAR}``, refuse tabs and duplicate keys, parse; return the node tree and the data.

    Raises:
        ConfigError: naming the line (and column) of the problem.
    """
    text = expand_env(text, path)
    if "\t" in text:
        line = text[: text.index("\t")].count("\n") + 1
        raise ConfigError(path, [f"line {line}: a tab character; YAML indents with spaces only"])
    try:
        root = yaml.compose(text, Loader=_StrictLoader)
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [f"{where}not valid YAML: {problem}"]) from None
    return root, data


def validate_model(model: type[M], data: Any, root: yaml.Node | None, path: Path | str) -> M:
    """Validate parsed YAML into ``model``; every problem named by line, YAML path, value and rule."""
    if not isinstance(data, dict):
        raise ConfigError(path, [f"expected a mapping with keys {', '.join(model.model_fields)}; "
                                 f"got {type(data).__name__}"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, [f"line {_line_of(root, _clean_loc(e['loc']))}: {_describe(dict(e), model)}"
                                 for e in exc.errors()]) from None


def parse_config(text: str, path: Path | str = "<string>", check_files: bool = True) -> AgentConfig:
    """Parse and validate YAML text; raise :class:`ConfigError` naming every problem."""
    path = Path(path)
    root, data = read_yaml(text, path)
    cfg = validate_model(AgentConfig, data, root, path)
    cfg = _resolve_paths(cfg, path.parent if path.name != "<string>" else Path.cwd())
    refs = [(("cameras", i, *loc), msg) for i, cam in enumerate(cfg.cameras) for loc, msg in cam.references()]
    if refs:
        raise ConfigError(path, [f"line {_line_of(root, loc)}: {format_loc(loc)}: {msg}" for loc, msg in refs])
    if check_files:
        problems = _check_files(cfg, root)
        if problems:
            raise ConfigError(path, problems)
    return cfg


def read_config_text(path: Path | str) -> str:
    """A configuration file's text; ConfigError naming the file when it cannot be read as UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text (byte {exc.start})"]) from None


def load_config(path: Path | str, check_files: bool = True) -> AgentConfig:
    """Read and validate a YAML configuration file."""
    return parse_config(read_config_text(path), Path(path), check_files=check_files)


def class_names_problem(cfg: AgentConfig, names: Sequence[str]) -> list[str]:
    """Names in ``model.classes`` that the model does not know, one message each."""
    known = set(names)
    problems = []
    for i, name in enumerate(cfg.model.classes or []):
        if name not in known:
            close = [n for n in names if re.sub(r"\W", "", n.lower()) == re.sub(r"\W", "", name.lower())]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"model.classes[{i}]: {name!r} is not a class of the model{hint}; "
                            f"known classes: {', '.join(names)}")
    return problems
