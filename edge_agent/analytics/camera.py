"""Tracks -> FrameEvents for one camera: lines, speeds, zones, movements, incidents, presence.

The one object the pipeline calls after the tracker::

    analytics = CameraAnalytics(cam, cfg, detector.names)
    events = analytics.update(tracks, frame.ts)     # FrameEvents
    doc = analytics.presence(frame.ts)              # per-lane presence, every statistics.presence_s

Everything is driven by the frame timestamps it is given, so a replay of a
file gives identical events.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from edge_agent.aggregation import Layout
from edge_agent.analytics.kinematics import Kinematics
from edge_agent.analytics.movements import MovementCounter
from edge_agent.analytics.parts import Parts
from edge_agent.analytics.stitching import Stitcher
from edge_agent.analytics.zones import ZoneMonitor, zone_length_m
from edge_agent.config import AgentConfig, CameraConfig
from edge_agent.counting import LineCounter
from edge_agent.types import Anchor, CrossingEvent, Detections, FrameEvents, Incident, Tracks, ZoneState

PRESENCE_SCHEMA = "edge-agent/presence"


def _iso(ts: float) -> str:
    from edge_agent.aggregation import utc

    return utc(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CameraAnalytics:
    """Per-camera analytics state.

    Args:
        cam: the camera's configuration (lines, zones, movements, calibration).
        cfg: the agent configuration (statistics thresholds, events).
        class_names: the detector's class names.
    """

    def __init__(self, cam: CameraConfig, cfg: AgentConfig, class_names: list[str] | tuple[str, ...]):
        self.cam = cam
        self.cfg = cfg
        self.names = list(class_names)
        self.plane = cam.calibration.plane() if cam.calibration is not None else None
        st = cfg.statistics
        sizes = {self.names.index(k): v for k, v in st.vehicle_size_m.items() if k in self.names}
        self.kinematics = Kinematics(self.plane, st.speed_window_s, Anchor.BOTTOM_CENTER, st.motion_window_s, sizes)
        self.counters = [LineCounter(line.id, line.p1, line.p2, line.in_side, cam.id, self.names, line.anchor,
                                     line.hysteresis_px, reverse_s=st.reverse_s, no_reverse=st.vehicle_classes)
                         for line in cam.lines]
        lines = {line.id: line for line in cam.lines}
        self.zones = [ZoneMonitor(z, cam.id, self.names, st.vehicle_classes, st, cfg.events, self.plane,
                                  lines.get(z.stop_line) if z.stop_line else None) for z in cam.zones]
        self.movements = MovementCounter(cam.movements, cam.id, self.names)
        self.stitcher = Stitcher()
        self.parts = Parts(st.part_inside, st.part_share)
        self.line_tags = {line.id: (line.lane, line.approach) for line in cam.lines}
        self._last_zones: tuple[ZoneState, ...] = ()
        self._pending: list[CrossingEvent] = []  # crossings waiting for the second half of their speed window
        self._last_presence: float | None = None

    def _release(self, ts: float, live: set[int], everything: bool = False) -> list[CrossingEvent]:
        """Crossings whose speed window is complete (or whose track is gone), with their speed."""
        half = self.cfg.statistics.speed_window_s / 2
        out, keep = [], []
        for e in self._pending:
            seen = self.kinematics.last_seen(e.track_id)
            done = everything or e.track_id not in live or seen is None or seen >= e.ts + half - 1e-9
            if not done:
                keep.append(e)
                continue
            v = self.kinematics.speed_at(e.track_id, e.ts)
            out.append(replace(e, speed_kmh=round(v, 2)) if v is not None else e)
        self._pending = keep
        return out

    def update(self, tracks: Tracks, ts: float, detections: Detections | None = None,
               frame_size: tuple[int, int] | None = None) -> FrameEvents:
        """Feed one frame's tracks (call every processed frame, even with none); ``frame_size`` is
        (width, height), for the camera that the calibration implies (vehicle footprints).

        With a calibration, a crossing is reported once its track has been
        seen half a speed window past the line (its speed is fitted on a
        window centred on the crossing); its ``ts`` stays the crossing time.
        """
        tracks = self.stitcher.update(tracks, ts)  # a track re-found after an occlusion keeps its id
        motion = self.kinematics.update(tracks, ts, detections, frame_size)
        counted = self.parts.update(tracks, ts)  # a box on a part of a vehicle (a truck's cab) is not counted
        new = [e for c in self.counters for e in c.update(counted, ts)]
        live = set(tracks.track_id.tolist())
        crossings = new
        if motion.calibrated:
            self._pending += new
            if self._pending and len(tracks.track_id):
                # a waiting crossing takes its track's class as it stands now (the majority over the
                # track's detections, see Tracker): a track born a few frames before the line on a box
                # of the wrong class (a truck's half seen as a car) has more evidence by the time its
                # speed window is complete than at the crossing itself
                cls = dict(zip(tracks.track_id.tolist(), tracks.class_id.tolist()))
                self._pending = [e if e.track_id not in cls else replace(e, class_name=self._name(cls[e.track_id]))
                                 for e in self._pending]
            crossings = self._release(ts, live)
        zone_states: list[ZoneState] = []
        incidents: list[Incident] = []
        for z in self.zones:
            state, inc = z.update(tracks, motion, ts)
            zone_states.append(state)
            incidents += inc
        moves = self.movements.update(tracks, ts, new, {z.zone.id: z.inside_seen for z in self.zones})
        if self.cfg.events.crossings:
            incidents += [self._crossing_incident(e.line_id, e.track_id, e.class_name, e.direction.value,
                                                  e.speed_kmh, e.ts, tracks) for e in crossings]
        self._last_zones = tuple(zone_states)
        return FrameEvents(ts=ts, crossings=tuple(crossings), movements=tuple(moves), incidents=tuple(incidents),
                           zones=self._last_zones)

    def _name(self, k: int) -> str:
        return self.names[k] if 0 <= k < len(self.names) else f"class{k}"

    def _crossing_incident(self, line_id: str, tid: int, cls: str, direction: str, speed: float | None,
                           ts: float, tracks: Tracks | None) -> Incident:
        lane, approach = self.line_tags.get(line_id, (None, None))
        conf = tracks.confidence[tracks.track_id == tid] if tracks is not None else np.zeros(0)
        return Incident(camera_id=self.cam.id, incident_id=f"{self.cam.id}:{line_id}:crossing:{tid}:"
                                                           f"{int(round(ts * 1000))}",
                        kind="crossing", where=line_id, start=ts, end=ts, lane=lane, approach=approach,
                        class_name=cls, track_id=tid, confidence=round(float(conf[0]), 3) if len(conf) else 0.0,
                        detail={"direction": direction, "speed_kmh": speed})

    def close(self, ts: float) -> FrameEvents:
        """The source ended or the agent stops: the crossings still waiting for their speed, and the end
        of every open incident."""
        crossings = self._release(ts, set(), everything=True)
        incidents = [inc for z in self.zones for inc in z.close(ts)]
        if self.cfg.events.crossings:
            incidents += [self._crossing_incident(e.line_id, e.track_id, e.class_name, e.direction.value,
                                                  e.speed_kmh, e.ts, None) for e in crossings]
        return FrameEvents(ts=ts, crossings=tuple(crossings), incidents=tuple(incidents))

    def presence(self, ts: float, force: bool = False) -> dict[str, Any] | None:
        """The per-lane presence document, when ``statistics.presence_s`` of frame time has passed.

        One entry per zone with a lane (the first zone of each lane), in the
        format of ``schemas/presence.v1.json``; None when it is not time yet
        or no zone has a lane.
        """
        every = self.cfg.statistics.presence_s
        if every <= 0 or not self._last_zones:
            return None
        if not force and self._last_presence is not None and ts - self._last_presence < every:
            return None
        lanes = []
        seen: set[str] = set()
        for z, state in zip(self.zones, self._last_zones):
            lane = z.zone.lane
            if lane is None or lane in seen:
                continue
            seen.add(lane)
            lanes.append({"lane_id": lane, "zone_id": z.zone.id, "approach": z.zone.approach,
                          "vehicles": state.vehicles, "queue_veh": state.queued, "near_veh": state.near,
                          "queue_m": state.queue_m})
        if not lanes:
            return None
        self._last_presence = ts
        return {"schema": PRESENCE_SCHEMA, "schema_version": 1, "camera_id": self.cam.id, "at": _iso(ts),
                "lanes": lanes}


def analytics_layout(cam: CameraConfig, cfg: AgentConfig) -> Layout:
    """What the camera's interval records report on, from its configuration."""
    plane = cam.calibration.plane() if cam.calibration is not None else None
    st = cfg.statistics
    return Layout(
        lines=tuple((ln.id, ln.lane, ln.approach) for ln in cam.lines),
        zones=tuple((z.id, z.lane, z.approach, zone_length_m(z, plane)) for z in cam.zones),
        movements=tuple(m.id for m in cam.movements),
        vehicle_classes=frozenset(st.vehicle_classes),
        speed_bins_kmh=tuple(st.speed_bins_kmh), speed_limit_kmh=st.speed_limit_kmh)
