"""Tracks + Motion -> ZoneState and incidents, for one polygon zone.

Per frame a zone reports who is inside (by class), how many vehicles are
queued (slower than the queue threshold), how far the queue reaches back from
the lane's stop line, how many vehicles are near the stop line (for signal
control), and the dwell time of every track that left. It raises incidents:

* ``wrong_way``: a vehicle moving against the zone's ``travel`` arrow faster
  than ``events.wrong_way_kmh`` for ``events.wrong_way_s``;
* ``stopped``: a vehicle slower than the queue threshold for ``no_stopping_s``;
* ``spillback``: the queue reaches ``spillback_veh`` vehicles or ``spillback_m``.

Each has a start (published at once) and an end. Speeds come from
:mod:`edge_agent.analytics.kinematics`: km/h with a calibration, px/s without
(thresholds ``*_px_s`` then apply and queue lengths in metres are not given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from edge_agent.analytics.kinematics import MS_TO_KMH, Motion
from edge_agent.config import EventsConfig, LineConfig, StatisticsConfig, ZoneConfig
from edge_agent.geometry import GroundPlane, distance_to_segment, points_in_polygon, principal_length
from edge_agent.types import Anchor, Incident, Tracks, ZoneState

EXIT_S = 0.5  # a track must stay outside this long to have left (its anchor jitters on the edge)


@dataclass
class _Occupant:
    first_ts: float
    last_ts: float
    class_name: str
    conf_sum: float = 0.0
    conf_n: int = 0
    out_since: float | None = None
    against_since: float | None = None
    against_from: npt.NDArray[np.float64] | None = None
    stopped_since: float | None = None
    open_incidents: dict[str, Incident] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)

    @property
    def confidence(self) -> float:
        return round(self.conf_sum / self.conf_n, 3) if self.conf_n else 0.0


def zone_length_m(zone: ZoneConfig, plane: GroundPlane | None) -> float | None:
    """The zone's length along the lane: configured, else the ground polygon's principal extent."""
    if zone.length_m is not None:
        return zone.length_m
    if plane is None:
        return None
    ground = plane.to_ground(list(zone.polygon))
    return None if np.isnan(ground).any() else round(principal_length(ground), 2)


class ZoneMonitor:
    """Watches one zone.

    Args:
        zone: its configuration.
        camera_id: copied into incidents.
        class_names: detector class names (index -> name).
        vehicle_classes: names that count as vehicles.
        stats: thresholds (queue speed, near distance).
        events: incident thresholds.
        plane: calibration, or None.
        stop_line: the line named by ``zone.stop_line``, if any.
        anchor: box point tested against the polygon.
    """

    def __init__(self, zone: ZoneConfig, camera_id: str, class_names: Sequence[str], vehicle_classes: Sequence[str],
                 stats: StatisticsConfig, events: EventsConfig, plane: GroundPlane | None,
                 stop_line: LineConfig | None = None, anchor: Anchor = Anchor.BOTTOM_CENTER):
        self.zone = zone
        self.camera_id = camera_id
        self.names = list(class_names)
        self.vehicle = set(vehicle_classes)
        self.plane = plane
        self.anchor = anchor
        self.polygon = np.asarray(zone.polygon, np.float64)
        self.length_m = zone_length_m(zone, plane)
        calibrated = plane is not None
        self.queue_speed = stats.queue_speed_kmh if calibrated else stats.queue_speed_px_s
        self.near_m = stats.near_stop_m
        self.events = events
        self.wrong_speed = (events.wrong_way_kmh / MS_TO_KMH) if calibrated else events.wrong_way_px_s
        self.stop_seg: npt.NDArray[np.float64] | None = None
        if stop_line is not None and plane is not None:
            self.stop_seg = plane.to_ground([stop_line.p1, stop_line.p2])
        self.travel: npt.NDArray[np.float64] | None = None
        if zone.travel is not None:
            pts = np.asarray(zone.travel, np.float64)
            if plane is not None:
                pts = plane.to_ground(pts)
            d = pts[1] - pts[0]
            self.travel = d / np.hypot(*d)
        self._in: dict[int, _Occupant] = {}
        self._spill: Incident | None = None
        self.inside_seen: set[int] = set()  # tracks inside and matched this frame (for movements)

    def _name(self, k: int) -> str:
        return self.names[k] if 0 <= k < len(self.names) else f"class{k}"

    def _incident(self, kind: str, ts: float, occ: _Occupant | None, tid: int | None,
                  detail: dict[str, float | int | str | None]) -> Incident:
        key = f"{tid}" if tid is not None else "zone"
        return Incident(camera_id=self.camera_id, incident_id=f"{self.camera_id}:{self.zone.id}:{kind}:{key}:"
                                                              f"{int(round(ts * 1000))}",
                        kind=kind, where=self.zone.id, start=ts, end=None, lane=self.zone.lane,
                        approach=self.zone.approach, class_name=occ.class_name if occ else None, track_id=tid,
                        confidence=occ.confidence if occ else 1.0, detail=detail)

    @staticmethod
    def _ended(inc: Incident, ts: float) -> Incident:
        return replace(inc, end=ts)

    def update(self, tracks: Tracks, motion: Motion, ts: float) -> tuple[ZoneState, list[Incident]]:
        anchors = tracks.anchors(self.anchor)
        inside = points_in_polygon(anchors, self.polygon) if len(tracks) else np.zeros(0, bool)
        seen = tracks.det_index >= 0
        self.inside_seen = set(tracks.track_id[inside & seen].tolist())
        incidents: list[Incident] = []
        by_class: dict[str, int] = {}
        vehicles = queued = near = speed_n = 0
        speed_sum = 0.0
        queue_m: float | None = 0.0 if self.stop_seg is not None else None
        dist = (distance_to_segment(motion.position, self.stop_seg[0], self.stop_seg[1])
                if self.stop_seg is not None and len(tracks) else None)
        queue_conf: list[float] = []
        present: set[int] = set()
        for i in np.flatnonzero(inside).tolist():
            tid = int(tracks.track_id[i])
            name = self._name(int(tracks.class_id[i]))
            present.add(tid)
            occ = self._in.get(tid)
            if occ is None:
                occ = self._in[tid] = _Occupant(first_ts=ts, last_ts=ts, class_name=name)
            occ.last_ts, occ.class_name, occ.out_since = ts, name, None
            if seen[i]:
                occ.conf_sum += float(tracks.confidence[i])
                occ.conf_n += 1
            by_class[name] = by_class.get(name, 0) + 1
            if name not in self.vehicle:
                continue
            vehicles += 1
            v = motion.speed[i]
            known = bool(np.isfinite(v))
            if known and motion.calibrated:
                speed_sum += float(v)
                speed_n += 1
            slow = known and v < self.queue_speed
            if slow:
                queued += 1
                queue_conf.append(occ.confidence)
                if dist is not None and np.isfinite(dist[i]):
                    queue_m = max(queue_m or 0.0, float(dist[i]))
            if dist is None or not np.isfinite(dist[i]) or dist[i] <= self.near_m:
                near += 1
            incidents += self._track_incidents(occ, tid, ts, motion.velocity[i], motion.position[i], slow, known)
        dwell = []
        reported = set(tracks.track_id.tolist())
        for tid in [t for t in self._in if t not in present]:
            occ = self._in[tid]
            if tid in reported:  # outside now: it has left once it stays out EXIT_S (boundary jitter)
                occ.out_since = ts if occ.out_since is None else occ.out_since
                if ts - occ.out_since < EXIT_S:
                    continue
            del self._in[tid]
            left = occ.out_since if occ.out_since is not None else occ.last_ts
            dwell.append(round(left - occ.first_ts, 3))
            incidents += [self._ended(inc, left) for inc in occ.open_incidents.values()]
        incidents += self._spillback(ts, queued, queue_m, queue_conf)
        state = ZoneState(zone_id=self.zone.id, by_class=dict(sorted(by_class.items())), vehicles=vehicles,
                          queued=queued, queue_m=None if queue_m is None else round(queue_m, 2), near=near,
                          speed_sum_kmh=speed_sum, speed_n=speed_n, dwell_s=tuple(dwell))
        return state, incidents

    def _track_incidents(self, occ: _Occupant, tid: int, ts: float, vel: npt.NDArray[np.float64],
                         pos: npt.NDArray[np.float64], slow: bool, known: bool) -> list[Incident]:
        out: list[Incident] = []
        if self.travel is not None and known:
            along = float(vel @ self.travel)
            if along < -self.wrong_speed:
                if occ.against_since is None:
                    occ.against_since, occ.against_from = ts, pos.copy()
                went = float((pos - occ.against_from) @ self.travel) if occ.against_from is not None else 0.0
                # it must also have moved against the arrow by at least half of what that speed and time give:
                # a box that jumps to another vehicle (an id switch) has a velocity but no such path
                far_enough = -went >= 0.5 * self.wrong_speed * self.events.wrong_way_s
                if (ts - occ.against_since >= self.events.wrong_way_s and far_enough
                        and "wrong_way" not in occ.reported):
                    speed = -along * (MS_TO_KMH if self.plane is not None else 1.0)
                    inc = self._incident("wrong_way", occ.against_since, occ, tid,
                                         {"speed_against": round(speed, 1),
                                          "unit": "km/h" if self.plane is not None else "px/s"})
                    occ.open_incidents["wrong_way"] = inc
                    occ.reported.add("wrong_way")
                    out.append(inc)
            else:
                occ.against_since = None
                if "wrong_way" in occ.open_incidents:
                    out.append(self._ended(occ.open_incidents.pop("wrong_way"), ts))
        if self.zone.no_stopping_s is not None and known:
            if slow:
                occ.stopped_since = ts if occ.stopped_since is None else occ.stopped_since
                if ts - occ.stopped_since >= self.zone.no_stopping_s and "stopped" not in occ.open_incidents:
                    inc = self._incident("stopped", occ.stopped_since, occ, tid,
                                         {"limit_s": self.zone.no_stopping_s})
                    occ.open_incidents["stopped"] = inc
                    out.append(inc)
            else:
                occ.stopped_since = None
                if "stopped" in occ.open_incidents:
                    out.append(self._ended(occ.open_incidents.pop("stopped"), ts))
        return out

    def _spillback(self, ts: float, queued: int, queue_m: float | None, conf: list[float]) -> list[Incident]:
        z = self.zone
        if z.spillback_veh is None and z.spillback_m is None:
            return []
        over = ((z.spillback_veh is not None and queued >= z.spillback_veh)
                or (z.spillback_m is not None and queue_m is not None and queue_m >= z.spillback_m))
        if over and self._spill is None:
            inc = self._incident("spillback", ts, None, None, {"queue_veh": queued, "queue_m": queue_m})
            self._spill = replace(inc, confidence=round(float(np.mean(conf)), 3) if conf else 0.0)
            return [self._spill]
        if not over and self._spill is not None:
            inc, self._spill = self._spill, None
            return [self._ended(inc, ts)]
        return []

    def close(self, ts: float) -> list[Incident]:
        """End every open incident (shutdown, end of file)."""
        out = [self._ended(inc, ts) for occ in self._in.values() for inc in occ.open_incidents.values()]
        if self._spill is not None:
            out.append(self._ended(self._spill, ts))
            self._spill = None
        for occ in self._in.values():
            occ.open_incidents.clear()
        return out
