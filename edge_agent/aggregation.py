"""FrameEvents -> IntervalRecord: traffic statistics per clock-aligned interval.

Intervals are aligned to multiples of their length since the Unix epoch (UTC),
so 60-second intervals start on the minute and 900-second ones on the quarter
hour, on every node; one aggregator per configured length runs side by side.
Time is injected: the pipeline passes frame timestamps (the video's own clock
for files, the wall clock for live cameras), which makes a replay of a file
produce identical records.

Definitions (per interval; "vehicles" are ``statistics.vehicle_classes``):

* **flow** = vehicles x 3600 / observed seconds;
* **spot speeds** at a line: space-mean = harmonic mean, time-mean = arithmetic
  mean, p85 = 85th percentile (linear interpolation), histogram, count over the limit;
* **headway** on a lane = time between successive vehicles crossing the lane's
  first line; a gap is booked in the interval of the second vehicle, so the
  first vehicle of an interval has a headway to the last of the previous one;
* **occupancy** of a zone: current / mean / max road users per class (means
  over processed frames), and occupancy % = share of frames with a vehicle inside;
* **density** = mean vehicles in the zone / zone length in km;
* **queue** = vehicles slower than the queue threshold in the zone (mean, max),
  and in metres from the stop line;
* **dwell** = time from entering to leaving the zone, for tracks that left in the interval.

A closed interval is never changed. Events that arrive for an interval that is
already closed (a live camera's clock stepped back, a late frame) update a
kept copy of it, which is emitted again with ``revision`` + 1.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from edge_agent.types import (
    DEFAULT_SPEED_BINS_KMH,
    CrossingEvent,
    DataQuality,
    Direction,
    FrameEvents,
    IntervalRecord,
    LaneStats,
    LineCounts,
    MovementEvent,
    SpeedStats,
    ZoneStats,
)

GAP_S = 2.0  # frames further apart than this do not count as the camera being online in between
DEFAULT_BINS = DEFAULT_SPEED_BINS_KMH


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


@dataclass(frozen=True)
class Layout:
    """What an aggregator reports on, in configuration order.

    Attributes:
        lines: (line id, lane, approach).
        zones: (zone id, lane, approach, length in metres or None).
        movements: movement ids.
        vehicle_classes: class names that are vehicles.
        speed_bins_kmh: histogram edges; speed_limit_kmh: for ``over_limit``.
    """

    lines: tuple[tuple[str, str | None, str | None], ...] = ()
    zones: tuple[tuple[str, str | None, str | None, float | None], ...] = ()
    movements: tuple[str, ...] = ()
    vehicle_classes: frozenset[str] = frozenset({"car", "motorcycle", "bus", "truck"})
    speed_bins_kmh: tuple[float, ...] = DEFAULT_BINS
    speed_limit_kmh: float | None = None

    @classmethod
    def of_lines(cls, line_ids: Sequence[str]) -> Layout:
        return cls(lines=tuple((lid, None, None) for lid in line_ids))

    def lanes(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """(lane, approach, first line id, first zone id) for every lane, in order of first mention."""
        out: dict[str, list[str | None]] = {}
        for lid, lane, approach in self.lines:
            if lane is not None:
                entry = out.setdefault(lane, [approach, None, None])
                entry[1] = entry[1] or lid
        for zid, lane, approach, _ in self.zones:
            if lane is not None:
                entry = out.setdefault(lane, [approach, None, None])
                entry[0] = entry[0] or approach
                entry[2] = entry[2] or zid
        return [(lane, a, ln, z) for lane, (a, ln, z) in out.items()]


def speed_stats(speeds: Sequence[float], bins: Sequence[float], limit: float | None) -> SpeedStats | None:
    """Spot-speed statistics of a sample (None when there are no samples)."""
    if not speeds:
        return None
    v = np.asarray(speeds, np.float64)
    edges = np.asarray(list(bins) + [np.inf])
    hist, _ = np.histogram(v, edges)
    positive = v[v > 0]
    return SpeedStats(
        n=len(v),
        space_mean=round(float(len(positive) / np.sum(1.0 / positive)), 2) if len(positive) else 0.0,
        time_mean=round(float(v.mean()), 2),
        p85=round(float(np.percentile(v, 85)), 2),
        min=round(float(v.min()), 2), max=round(float(v.max()), 2),
        histogram=tuple(int(x) for x in hist),
        over_limit=int(np.sum(v > limit)) if limit is not None else None,
    )


@dataclass
class _ZoneAcc:
    frames: int = 0
    occupied: int = 0
    vehicles: int = 0
    by_class_sum: dict[str, int] = field(default_factory=dict)
    by_class_max: dict[str, int] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)
    queue_sum: int = 0
    queue_max: int = 0
    queue_m_sum: float = 0.0
    queue_m_max: float = 0.0
    queue_m_known: bool = False
    dwell: list[float] = field(default_factory=list)
    speed_sum: float = 0.0
    speed_n: int = 0


class _Bin:
    def __init__(self, start: float, layout: Layout):
        self.start = start
        self.counts: dict[str, dict[Direction, dict[str, int]]] = {
            lid: {Direction.IN: {}, Direction.OUT: {}} for lid, _, _ in layout.lines}
        self.speeds: dict[str, list[float]] = {lid: [] for lid, _, _ in layout.lines}
        self.zones: dict[str, _ZoneAcc] = {zid: _ZoneAcc() for zid, _, _, _ in layout.zones}
        self.movements: dict[str, dict[str, int]] = {m: {} for m in layout.movements}
        self.headways: dict[str, list[float]] = {}
        self.lane_volume: dict[str, int] = {}
        self.processed = 0
        self.dropped = 0
        self.inference_ms = 0.0
        self.online_s = 0.0
        self.revision = 0


class IntervalAggregator:
    """Accumulates one camera's frames and events into fixed intervals of one length.

    Args:
        camera_id: camera id for the records.
        layout: what to report (a list of line ids is enough for plain counting).
        interval_s: interval length in seconds; must divide 86400.
        nominal_fps: frames per second the source should deliver (for ``quality.frames_expected``).
        keep_closed: closed intervals kept for late corrections.
    """

    def __init__(self, camera_id: str, layout: Layout | Sequence[str], interval_s: int,
                 nominal_fps: float | None = None, keep_closed: int = 2, grace_s: float = 0.0):
        if interval_s <= 0 or 86400 % interval_s:
            raise ValueError(f"interval_s must be a positive divisor of 86400, got {interval_s}")
        self.camera_id = camera_id
        self.layout = layout if isinstance(layout, Layout) else Layout.of_lines(list(layout))
        self.line_ids = [lid for lid, _, _ in self.layout.lines]
        self.interval_s = interval_s
        self.nominal_fps = nominal_fps
        if not 0 <= grace_s < interval_s:
            raise ValueError(f"grace_s must be in [0, interval_s), got {grace_s}")
        self.grace_s = grace_s
        self._pending: list[_Bin] = []  # ended, waiting out the grace period for late events
        self._lanes = self.layout.lanes()
        self._lane_of_line = {ln: lane for lane, _, ln, _ in self._lanes if ln is not None}
        self._bin: _Bin | None = None
        self._closed: deque[_Bin] = deque(maxlen=keep_closed)
        self._started_at: float | None = None
        self._last_ts: float | None = None
        self._last_lane_ts: dict[str, float] = {}

    def _bin_start(self, ts: float) -> float:
        return float(math.floor(ts / self.interval_s) * self.interval_s)

    # ------------------------------------------------------------ records
    def _record(self, b: _Bin, partial_end: float | None = None) -> IntervalRecord:
        start, end = b.start, b.start + self.interval_s
        starts_late = self._started_at is not None and self._started_at > start
        partial = starts_late or partial_end is not None
        observed = self._observed(start, end, partial_end)
        lay = self.layout
        lines = tuple(
            LineCounts(lid, {d: dict(sorted(c.items())) for d, c in b.counts[lid].items()},
                       speeds=speed_stats(b.speeds[lid], lay.speed_bins_kmh, lay.speed_limit_kmh),
                       lane=lane, approach=approach)
            for lid, lane, approach in lay.lines)
        zones = tuple(self._zone_stats(zid, lane, approach, length, b.zones[zid])
                      for zid, lane, approach, length in lay.zones)
        zone_by_id = {z.zone_id: z for z in zones}
        lanes = []
        for lane, approach, first_line, first_zone in self._lanes:
            vol = b.lane_volume.get(lane, 0) if first_line else 0
            hw = b.headways.get(lane, [])
            zs = zone_by_id.get(first_zone) if first_zone else None
            lanes.append(LaneStats(
                lane_id=lane, approach=approach, volume=vol,
                flow_veh_h=round(vol * 3600.0 / observed, 1) if first_line and observed > 0 else None,
                headway_s=(len(hw), round(float(np.mean(hw)), 3) if hw else None,
                           round(float(np.min(hw)), 3) if hw else None),
                occupancy_pct=zs.occupancy_pct if zs else None,
                density_veh_km=zs.density_veh_km if zs else None,
                queue_veh=zs.queue_veh if zs else None,
                speeds=speed_stats(b.speeds[first_line], lay.speed_bins_kmh, lay.speed_limit_kmh)
                if first_line else None))
        expected = round(observed * self.nominal_fps) if self.nominal_fps else None
        return IntervalRecord(
            camera_id=self.camera_id, start=utc(start), end=utc(end), partial=partial, lines=lines,
            frames_processed=b.processed, frames_dropped=b.dropped,
            inference_ms_mean=round(b.inference_ms / b.processed, 3) if b.processed else None,
            observed_s=observed, zones=zones, lanes=tuple(lanes),
            movements={m: dict(sorted(c.items())) for m, c in b.movements.items()},
            quality=DataQuality(observed_s=observed, frames_expected=expected,
                                online_s=round(min(b.online_s, observed), 3)),
            revision=b.revision,
        )

    @staticmethod
    def _zone_stats(zid: str, lane: str | None, approach: str | None, length: float | None,
                    z: _ZoneAcc) -> ZoneStats:
        n = z.frames
        occ = {c: (z.current.get(c, 0), round(z.by_class_sum[c] / n, 3) if n else 0.0, z.by_class_max[c])
               for c in sorted(z.by_class_sum)}
        mean_veh = z.vehicles / n if n else None
        return ZoneStats(
            zone_id=zid, lane=lane, approach=approach, occupancy=occ,
            occupancy_pct=round(100.0 * z.occupied / n, 2) if n else None,
            density_veh_km=round(mean_veh / (length / 1000.0), 2) if mean_veh is not None and length else None,
            queue_veh=(round(z.queue_sum / n, 3), z.queue_max) if n else None,
            queue_m=(round(z.queue_m_sum / n, 2), round(z.queue_m_max, 2)) if n and z.queue_m_known else None,
            dwell_s=(len(z.dwell), round(float(np.mean(z.dwell)), 3) if z.dwell else None,
                     round(float(np.max(z.dwell)), 3) if z.dwell else None),
            speed_kmh=round(z.speed_sum / z.speed_n, 2) if z.speed_n else None,
        )

    def _observed(self, start: float, end: float, partial_end: float | None) -> float:
        lo = max(start, self._started_at if self._started_at is not None else start)
        hi = min(end, partial_end) if partial_end is not None else end
        return round(max(0.0, hi - lo), 3)

    # ------------------------------------------------------------ feeding
    def advance(self, ts: float) -> list[IntervalRecord]:
        """Close every interval that ended at or before ``ts``.

        Intervals with no frames at all (a camera outage) are emitted too, with
        zero frames, so a subscriber sees the gap instead of silence.
        """
        if self._started_at is None:
            self._started_at = ts
        out: list[IntervalRecord] = []
        if self._bin is None:
            self._bin = _Bin(self._bin_start(ts), self.layout)
        while ts >= self._bin.start + self.interval_s:
            nxt = self._bin.start + self.interval_s
            self._pending.append(self._bin)
            self._bin = _Bin(nxt, self.layout)
        while self._pending and ts >= self._pending[0].start + self.interval_s + self.grace_s:
            b = self._pending.pop(0)
            out.append(self._record(b))
            self._closed.append(b)
        return out

    def _bin_for(self, ts: float) -> _Bin | None:
        """The open (current or pending) interval holding time ``ts``."""
        start = self._bin_start(ts)
        for b in (self._bin, *self._pending):
            if b is not None and b.start == start:
                return b
        return None

    def add_frame(self, ts: float, inference_ms: float | None, dropped: int = 0,
                  events: FrameEvents | Iterable[CrossingEvent] = ()) -> list[IntervalRecord]:
        """Account one processed frame (and frames dropped before it) at time ``ts``.

        Args:
            events: the frame's analytics, or just its crossings.

        Returns:
            Records of the intervals this frame's time closed, and revised
            records of closed intervals that late events changed.
        """
        fe = events if isinstance(events, FrameEvents) else FrameEvents(ts=ts, crossings=tuple(events))
        out = self.advance(ts) if self._bin is None or ts >= self._bin.start else []
        frame_bin = self._bin_for(ts)
        revised: dict[float, _Bin] = {}
        if frame_bin is None:  # the frame itself is late (a live clock stepped back)
            frame_bin = self._closed_bin(ts)
            if frame_bin is None:
                return out  # older than anything kept: its record is long published
            revised[frame_bin.start] = frame_bin
        self._account_frame(frame_bin, ts, inference_ms, dropped, fe)
        # crossings and movements go to the interval of their own time, which may be the previous one
        # (a crossing is timed where the path met the line, a frame or an occlusion earlier)
        timed: list[CrossingEvent | MovementEvent] = [*fe.crossings, *fe.movements]
        for ev in timed:
            b = self._bin_for(ev.ts)
            if b is None:
                b = self._closed_bin(ev.ts)
                if b is None or b.start > frame_bin.start:
                    b = frame_bin  # older than anything kept: booked with its frame
                else:
                    revised[b.start] = b
            elif b.start > frame_bin.start:
                b = frame_bin
            self._account_event(b, ev)
        for b in revised.values():
            b.revision += 1
            out.append(self._record(b))
        return out

    def _closed_bin(self, ts: float) -> _Bin | None:
        start = self._bin_start(ts)
        return next((b for b in self._closed if b.start == start), None)

    def _account_frame(self, b: _Bin, ts: float, inference_ms: float | None, dropped: int,
                       fe: FrameEvents) -> None:
        if inference_ms is not None:
            b.processed += 1
            b.inference_ms += inference_ms
        b.dropped += dropped
        if self._last_ts is not None and 0 < ts - self._last_ts <= GAP_S:
            b.online_s += ts - self._last_ts
        self._last_ts = ts if self._last_ts is None else max(ts, self._last_ts)
        for zs in fe.zones:
            acc = b.zones.get(zs.zone_id)
            if acc is None:
                continue
            acc.frames += 1
            acc.occupied += zs.vehicles > 0
            acc.vehicles += zs.vehicles
            for c in set(acc.by_class_sum) | set(zs.by_class):
                k = zs.by_class.get(c, 0)
                acc.by_class_sum[c] = acc.by_class_sum.get(c, 0) + k
                acc.by_class_max[c] = max(acc.by_class_max.get(c, 0), k)
            acc.current = dict(zs.by_class)
            acc.queue_sum += zs.queued
            acc.queue_max = max(acc.queue_max, zs.queued)
            if zs.queue_m is not None:
                acc.queue_m_known = True
                acc.queue_m_sum += zs.queue_m
                acc.queue_m_max = max(acc.queue_m_max, zs.queue_m)
            acc.dwell += zs.dwell_s
            acc.speed_sum += zs.speed_sum_kmh
            acc.speed_n += zs.speed_n

    def _account_event(self, b: _Bin, ev: CrossingEvent | MovementEvent) -> None:
        if isinstance(ev, MovementEvent):
            per_class = b.movements.setdefault(ev.movement_id, {})
            per_class[ev.class_name] = per_class.get(ev.class_name, 0) + 1
            return
        per_class = b.counts[ev.line_id][ev.direction]
        per_class[ev.class_name] = per_class.get(ev.class_name, 0) + 1
        if ev.class_name not in self.layout.vehicle_classes:
            return
        if ev.speed_kmh is not None:
            b.speeds[ev.line_id].append(ev.speed_kmh)
        lane = self._lane_of_line.get(ev.line_id)
        if lane is not None:
            b.lane_volume[lane] = b.lane_volume.get(lane, 0) + 1
            last = self._last_lane_ts.get(lane)
            if last is not None and ev.ts >= last:
                b.headways.setdefault(lane, []).append(ev.ts - last)
            self._last_lane_ts[lane] = ev.ts if last is None else max(last, ev.ts)

    def flush(self, end_ts: float) -> list[IntervalRecord]:
        """Close the current interval early (shutdown, end of file) as a partial record.

        Args:
            end_ts: time up to which the source was observed (last frame's
                time plus one frame period).
        """
        if self._bin is None:
            return []
        out = self.advance(end_ts)
        assert self._bin is not None
        for b in self._pending:  # no more events can come: close the intervals waiting for them
            out.append(self._record(b))
            self._closed.append(b)
        had_ended = bool(self._pending) or bool(out)
        self._pending = []
        if had_ended and not (self._bin.processed or self._bin.dropped):
            self._bin = None  # the source ended exactly on an interval boundary
        else:
            if self._last_ts is not None and 0 < end_ts - self._last_ts <= GAP_S:
                self._bin.online_s += end_ts - self._last_ts
            out.append(self._record(self._bin, end_ts))
            self._closed.append(self._bin)
            self._bin = None
        return out
