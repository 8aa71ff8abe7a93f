"""One camera, end to end: source -> detector -> tracker -> line counters -> aggregator -> publisher.

The only module that knows every stage. Each camera runs in its own thread;
the detector (one ONNX Runtime session) is shared, since ``session.run`` is
thread-safe and releases the GIL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.aggregation import IntervalAggregator
from edge_agent.config import AgentConfig, CameraConfig, TrackerSection
from edge_agent.counting import LineCounter
from edge_agent.detection import Detector
from edge_agent.messages import stats_message
from edge_agent.mqtt import Publisher
from edge_agent.sources import SourceError, VideoSource
from edge_agent.tracking import Tracker, TrackerConfig
from edge_agent.types import CrossingEvent, IntervalRecord

log = logging.getLogger(__name__)


def tracker_config(section: TrackerSection) -> TrackerConfig:
    return TrackerConfig(**section.model_dump())


@dataclass
class CameraResult:
    """What a camera pipeline did, for logs and tests."""

    frames: int = 0
    crossings: list[CrossingEvent] = field(default_factory=list)
    records: list[IntervalRecord] = field(default_factory=list)
    error: str | None = None


class CameraPipeline:
    """Runs one camera until its source ends or ``stop`` is set.

    Args:
        cam: the camera's configuration.
        cfg: the whole agent configuration (statistics, tracker, MQTT prefix).
        detector: shared detector.
        publisher: where messages go.
        on_record: called with each interval record (for the CLI's log).
    """

    def __init__(self, cam: CameraConfig, cfg: AgentConfig, detector: Detector, publisher: Publisher,
                 on_record: Callable[[IntervalRecord], None] | None = None):
        self.cam = cam
        self.cfg = cfg
        self.detector = detector
        self.publisher = publisher
        self.on_record = on_record
        self.tracker = Tracker(tracker_config(cfg.tracker))
        self.counters = [LineCounter(line.id, line.p1, line.p2, line.in_side, cam.id, detector.names,
                                     line.anchor, line.hysteresis_px) for line in cam.lines]
        self.aggregator = IntervalAggregator(cam.id, [line.id for line in cam.lines], cfg.statistics.interval_s)
        self.result = CameraResult()

    def _emit(self, records: list[IntervalRecord]) -> None:
        vehicle = set(self.cfg.statistics.vehicle_classes)
        for rec in records:
            self.result.records.append(rec)
            msg = stats_message(rec, self.cfg.mqtt.topic_prefix, self.cfg.mqtt.client_id, vehicle)
            log.info("interval record %s", msg.payload.decode())
            self.publisher.publish(msg)
            if self.on_record:
                self.on_record(rec)

    def run(self, stop: threading.Event) -> CameraResult:
        source = VideoSource(self.cam, stop)
        try:
            for frame, dropped in source.frames():
                detections = self.detector(frame.image)
                tracks = self.tracker.update(detections, frame.ts)
                events = [e for c in self.counters for e in c.update(tracks, frame.ts)]
                for e in events:
                    log.debug("crossing camera=%s line=%s track=%d class=%s direction=%s", e.camera_id,
                              e.line_id, e.track_id, e.class_name, e.direction.value)
                self.result.crossings += events
                self.result.frames += 1
                self._emit(self.aggregator.add_frame(frame.ts, self.detector.last_inference_ms, dropped, events))
            # the source ended (end of file) or stop was set: publish the partial interval
            if source.last_ts is not None:
                end = time.time() if source.is_live else source.last_ts + 1.0 / source.fps
                self._emit(self.aggregator.flush(end))
        except SourceError as exc:
            self.result.error = str(exc)
            log.error("%s", exc)
        return self.result


def frames_summary(results: dict[str, CameraResult]) -> str:
    return ", ".join(f"{cid}: {r.frames} frames, {len(r.crossings)} crossings, {len(r.records)} records"
                     for cid, r in results.items())
