"""One camera, end to end: source -> detector -> tracker -> analytics -> aggregators -> publisher.

The only module that knows every stage. Each camera runs in its own thread, which
reads and letterboxes its next frames (a live camera's newest frame is prepared by a thread of
its own) and hands them to inference before it tracks and counts the current one, so that
inference never waits for it (``CameraPipeline._consume``); the detector (its ONNX Runtime sessions, one per
``performance.streams``) is shared through the node's inference scheduler, which batches and shares it fairly
(``edge_agent/scheduler.py``). Nothing that goes wrong in one camera (a dead
stream, a corrupt frame) stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.aggregation import IntervalAggregator
from edge_agent.analytics import CameraAnalytics, analytics_layout
from edge_agent.annotate import Annotator
from edge_agent.config import AgentConfig, CameraConfig, TrackerSection
from edge_agent.detection import Detector
from edge_agent.health import HEALTH_SCHEMA, Metrics
from edge_agent.messages import event_message, health_topic, presence_topic, stats_message
from edge_agent.mqtt import Publisher
from edge_agent.scheduler import InferenceScheduler, LatencyLog, Prefetcher, Prepared, Ticket
from edge_agent.sources import SourceError, VideoSource
from edge_agent.tracking import Tracker, TrackerConfig
from edge_agent.types import CrossingEvent, Detections, Frame, Incident, IntervalRecord

log = logging.getLogger(__name__)


def tracker_config(section: TrackerSection) -> TrackerConfig:
    return TrackerConfig(**section.model_dump())


@dataclass
class CameraResult:
    """What a camera pipeline did, for logs and tests."""

    frames: int = 0
    crossings: list[CrossingEvent] = field(default_factory=list)
    records: list[IntervalRecord] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    error: str | None = None


class CameraPipeline:
    """Runs one camera until its source ends or ``stop`` is set.

    Args:
        cam: the camera's configuration.
        cfg: the whole agent configuration (statistics, tracker, MQTT prefix).
        detector: shared detector.
        publisher: where messages go.
        metrics: the node's Prometheus metrics.
        identity: model and configuration fingerprints for the health record.
        annotate: write an annotated video of this camera here (boxes, ids, lines, counts).
        scheduler: the node's shared inference scheduler (batching and fair sharing between
            cameras); None: this camera's thread runs the detector itself.
    """

    def __init__(self, cam: CameraConfig, cfg: AgentConfig, detector: Detector, publisher: Publisher,
                 metrics: Metrics | None = None, identity: Mapping[str, str] | None = None,
                 annotate: Path | None = None, *, scheduler: InferenceScheduler | None = None):
        self.cam = cam
        self.scheduler = scheduler
        self.latency = LatencyLog()  # capture -> counted, per frame and per frame that completed a crossing
        self.annotate_path = annotate
        self.annotator: Annotator | None = None
        self.cfg = cfg
        self.detector = detector
        self.publisher = publisher
        self.metrics = metrics or Metrics()
        self.identity = dict(identity or {})
        self.tracker = Tracker(tracker_config(cfg.tracker))
        self.analytics = CameraAnalytics(cam, cfg, detector.names)
        self.counters = self.analytics.counters
        layout = analytics_layout(cam, cfg)
        self.aggregators = [IntervalAggregator(cam.id, layout, n, grace_s=min(cfg.statistics.grace_s, n / 2))
                            for n in cfg.statistics.intervals]
        self.result = CameraResult()
        self.source: VideoSource | None = None
        self._window = [time.monotonic(), 0, 0.0]  # start, frames, inference ms, for the health record's fps
        self._last_health = 0.0
        self._last_reconnects = 0

    # ------------------------------------------------------------ outputs
    def _emit(self, records: list[IntervalRecord]) -> None:
        st = self.cfg.statistics
        vehicle = set(st.vehicle_classes)
        for rec in records:
            self.result.records.append(rec)
            out = self.publisher.publish(stats_message(rec, self.cfg.mqtt.topic_prefix, self.cfg.mqtt.client_id,
                                                       vehicle, st.speed_bins_kmh))
            log.info("interval record %s", out.payload.decode())

    def _emit_incidents(self, incidents: Sequence[Incident]) -> None:
        for inc in incidents:
            self.result.incidents.append(inc)
            out = self.publisher.publish(event_message(inc, self.cfg.mqtt.topic_prefix, self.cfg.mqtt.client_id))
            log.info("event %s", out.payload.decode())

    def _advance(self, ts: float) -> None:
        self._emit([r for agg in self.aggregators for r in agg.advance(ts)])

    def health(self) -> dict[str, Any]:
        """The camera's health record (also served by ``/healthz``)."""
        src = self.source
        start, frames, inf_ms = self._window
        elapsed = max(time.monotonic() - start, 1e-6)
        spool = getattr(self.publisher, "spool", None)
        return {
            "schema": HEALTH_SCHEMA, "schema_version": 1, "agent_version": __version__,
            "node_id": self.cfg.mqtt.client_id, "camera_id": self.cam.id, "ts": round(time.time(), 3),
            "state": src.state if src else "connecting",
            "fps": round(frames / elapsed, 2),
            "inference_ms": round(inf_ms / frames, 2) if frames else None,
            "frames_processed": self.result.frames,
            "frames_dropped": src.counters.dropped if src else 0,
            "reconnects": src.counters.reconnects if src else 0,
            "spool_depth": spool.depth() if spool else 0,
            "spool_dropped": spool.dropped if spool else 0,
            "last_seq": spool.last_seq if spool else 0,
            "mqtt_connected": bool(getattr(self.publisher, "connected", threading.Event()).is_set()),
            **self.identity,
        }

    def _tick(self, now_mono: float, force: bool = False) -> None:
        """Refresh gauges and, every ``health.interval_s``, publish the health record."""
        src = self.source
        m, cid = self.metrics, self.cam.id
        if src is not None and src.counters.reconnects > self._last_reconnects:
            m.reconnects.labels(cid).inc(src.counters.reconnects - self._last_reconnects)
            self._last_reconnects = src.counters.reconnects
        if not force and now_mono - self._last_health < self.cfg.health.interval_s:
            return
        doc = self.health()
        m.streaming.labels(cid).set(1 if doc["state"] == "streaming" else 0)
        m.spool_depth.labels(cid).set(doc["spool_depth"])
        m.spool_dropped.labels(cid).set(doc["spool_dropped"])
        m.connected.labels(cid).set(1 if doc["mqtt_connected"] else 0)
        self.publisher.publish_latest(health_topic(self.cfg.mqtt.topic_prefix, cid), doc)
        self._last_health = now_mono
        self._window = [now_mono, 0, 0.0]

    # ------------------------------------------------------------ the loop
    def _start(self, item: Prepared | None) -> Ticket | None:
        """Hand a prepared frame to the shared scheduler; None when it is not inferred there
        (a heartbeat, a frame that could not be prepared, or no scheduler)."""
        if self.scheduler is None or item is None or item.frame is None or item.tensor is None:
            return None
        return self.scheduler.submit(self.cam.id, item.tensor)

    def _finish(self, item: Prepared, ticket: Ticket | None) -> None:
        """Everything after the frame was handed over: its output, then downstream of the detector.

        A frame the detector refuses is skipped and counted; the camera goes on.
        """
        frame = item.frame
        if frame is None:  # a live source without a frame: intervals still close on the wall clock
            self._advance(time.time())
            return
        try:
            if item.error is not None or item.tensor is None or item.letterbox is None:
                raise ValueError(item.error or "frame was not prepared")
            if ticket is not None:
                got = ticket.wait()
                output, inf_ms = got.output, got.ms
            else:
                output = self.detector.infer(item.tensor)
                inf_ms = self.detector.last_inference_ms
            detections = self.detector.postprocess(output, item.letterbox, frame.image.shape)
            crossings = len(self.result.crossings)
            self._after_detect(frame, detections, inf_ms, item.dropped)
            self.latency.add(time.time() - item.captured, len(self.result.crossings) > crossings)
        except ValueError as exc:  # a frame a stage refuses: skip it, count it, go on
            log.warning("camera %s: frame %d skipped: %s", self.cam.id, frame.seq, exc)
            self.metrics.dropped.labels(self.cam.id).inc()

    def _consume(self, feed: Prefetcher) -> None:
        """Infer and process the feed's frames in order, one frame ahead (``streams`` frames ahead).

        As soon as frame n's output is back, frame n+1 (if it is already prepared) goes to
        inference, and frame n is post-processed, tracked and counted while n+1 is inferred, so the
        detector does not sit idle during the work downstream of it. A live camera whose next
        frame has not arrived yet gets frame n's results at once rather than after it. With
        several inference streams (``performance.streams``) the camera keeps the scheduler's
        ``depth`` frames handed over while it waits for the oldest, and takes their outputs in order.
        """
        depth = self.scheduler.depth if self.scheduler is not None else 1
        first = feed.take()
        if first is None:
            return
        flight: deque[tuple[Prepared, Ticket | None]] = deque([(first, self._start(first))])
        while flight:
            item, ticket = flight[0]
            if ticket is not None:
                self._hand_over(feed, flight, depth)  # more streams: more of this camera's frames in flight
                ticket.done.wait()
                self._hand_over(feed, flight, depth + 1)  # the oldest is done: its successor goes in now
            flight.popleft()
            self._finish(item, ticket)
            self._tick(time.monotonic())
            if not flight:
                nxt = feed.take()
                if nxt is None:
                    return
                flight.append((nxt, self._start(nxt)))

    def _hand_over(self, feed: Prefetcher, flight: deque[tuple[Prepared, Ticket | None]], upto: int) -> None:
        """Start frames that are already prepared until ``upto`` are in flight (never waits for one)."""
        while len(flight) < upto:
            more = feed.take(wait=False)
            if more is None:
                return
            flight.append((more, self._start(more)))

    def _feed(self, source: VideoSource) -> Prefetcher:
        """The source's frames, letterboxed: a live camera's newest one and a paced (``realtime``) file's next
        ones in a thread of their own, a file's by this camera's thread as it hands them over (or
        ``performance.prefetch`` ahead in a thread)."""

        def dropped(n: int) -> None:
            source.counters.dropped += n

        # a live camera's newest frame is always ready in a thread; so is a paced file's next frame, because
        # reading it waits for its time, and a camera thread must not wait while it has frames in flight
        paced = source.is_live or self.cam.realtime
        depth = max(self.cfg.performance.prefetch, 1) if paced else self.cfg.performance.prefetch
        return Prefetcher(source.frames(), self.detector.preprocess, depth,
                          newest_wins=source.is_live, on_drop=dropped,
                          slots=self.scheduler.prepare_slots if self.scheduler else None,
                          live_clock=source.is_live, name=f"prefetch-{self.cam.id}")

    def _after_detect(self, frame: Frame, detections: Detections, inf_ms: float, dropped: int) -> None:
        """Everything downstream of the detector for one frame: track, count, aggregate, publish."""
        size = (frame.image.shape[1], frame.image.shape[0])
        tracks = self.tracker.update(detections, frame.ts, frame_size=size)
        fe = self.analytics.update(tracks, frame.ts, detections, size)
        events = list(fe.crossings)
        m, cid = self.metrics, self.cam.id
        m.frames.labels(cid).inc()
        m.inference.labels(cid).observe(inf_ms / 1000)
        if dropped:
            m.dropped.labels(cid).inc(dropped)
        for e in events:
            m.crossings.labels(cid, e.line_id, e.direction.value, e.class_name).inc()
            log.debug("crossing camera=%s line=%s track=%d class=%s direction=%s", e.camera_id, e.line_id,
                      e.track_id, e.class_name, e.direction.value)
        self.result.crossings += events
        self.result.frames += 1
        self._window[1] += 1
        self._window[2] += inf_ms
        if self.annotate_path is not None:
            if self.annotator is None:
                fps = self.source.fps if self.source else 10.0
                self.annotator = Annotator(self.annotate_path, min(self.cam.fps_cap or fps, fps), self.detector.names,
                                           self.cam)
            self.annotator.add(frame, tracks, events)
        if self.source is not None and not any(a.nominal_fps for a in self.aggregators):
            for a in self.aggregators:
                a.nominal_fps = min(self.source.fps, self.cam.fps_cap or self.source.fps)
        self._emit([r for agg in self.aggregators for r in agg.add_frame(frame.ts, inf_ms, dropped, fe)])
        self._emit_incidents(fe.incidents)
        presence = self.analytics.presence(frame.ts)
        if presence is not None:
            presence["node_id"] = self.cfg.mqtt.client_id
            self.publisher.publish_latest(presence_topic(self.cfg.mqtt.topic_prefix, self.cam.id), presence)

    def run(self, stop: threading.Event, source: VideoSource | None = None) -> CameraResult:
        """Process the camera until its source ends or ``stop`` is set.

        Args:
            stop: set to stop.
            source: frames to use instead of the camera's configured source (benchmarks, tests).
        """
        self.source = source = source or VideoSource(self.cam, stop, self.cfg.performance.decode_threads)
        self._tick(time.monotonic(), force=True)
        if self.scheduler is not None:
            self.scheduler.register(self.cam.id, self.cam.weight)
        feed = self._feed(source)
        try:
            self._consume(feed)
            # the source ended (end of file) or stop was set: publish the partial interval
            if source.last_ts is not None:
                end = time.time() if source.is_live else source.last_ts + 1.0 / source.fps
                last = self.analytics.close(end)
                self._emit([r for agg in self.aggregators for r in agg.add_frame(last.ts, None, 0, last)])
                self._emit_incidents(last.incidents)
                self._emit([r for agg in self.aggregators for r in agg.flush(end)])
        except SourceError as exc:
            self.result.error = str(exc)
            log.error("%s", exc)
        finally:
            feed.close()
            if self.scheduler is not None:
                self.scheduler.unregister(self.cam.id)
        if self.annotator is not None:
            self.annotator.close()
        if source.state == "streaming":
            source.state = "stopped"
        self._tick(time.monotonic(), force=True)
        return self.result


def frames_summary(results: Mapping[str, CameraResult]) -> str:
    return ", ".join(f"{cid}: {r.frames} frames, {len(r.crossings)} crossings, {len(r.records)} records"
                     for cid, r in results.items())
