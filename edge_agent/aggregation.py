"""CrossingEvent -> IntervalRecord: counts per clock-aligned interval.

Intervals are aligned to multiples of their length since the Unix epoch (UTC),
so 60-second intervals start on the minute and 900-second ones on the quarter
hour, on every node. Time is injected: the pipeline passes frame timestamps
(the video's own clock for files, the wall clock for live cameras), which
makes a replay of a file produce identical records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from edge_agent.types import CrossingEvent, Direction, IntervalRecord, LineCounts


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class _Bin:
    def __init__(self, start: float, line_ids: Sequence[str]):
        self.start = start
        self.counts: dict[str, dict[Direction, dict[str, int]]] = {
            lid: {Direction.IN: {}, Direction.OUT: {}} for lid in line_ids}
        self.processed = 0
        self.dropped = 0
        self.inference_ms = 0.0
        self.first_ts: float | None = None
        self.last_ts: float | None = None


class IntervalAggregator:
    """Accumulates one camera's frames and crossings into fixed intervals.

    Args:
        camera_id: camera id for the records.
        line_ids: counting lines, in configuration order (every record lists
            all of them, with zero counts where nothing crossed).
        interval_s: interval length in seconds; must divide 86400.
    """

    def __init__(self, camera_id: str, line_ids: Sequence[str], interval_s: int):
        if interval_s <= 0 or 86400 % interval_s:
            raise ValueError(f"interval_s must be a positive divisor of 86400, got {interval_s}")
        self.camera_id = camera_id
        self.line_ids = list(line_ids)
        self.interval_s = interval_s
        self._bin: _Bin | None = None
        self._started_at: float | None = None

    def _bin_start(self, ts: float) -> float:
        return float(math.floor(ts / self.interval_s) * self.interval_s)

    def _close(self, partial_end: float | None = None) -> IntervalRecord:
        b = self._bin
        assert b is not None
        start, end = b.start, b.start + self.interval_s
        starts_late = self._started_at is not None and self._started_at > start
        partial = starts_late or partial_end is not None
        lines = tuple(LineCounts(lid, {d: dict(sorted(c.items())) for d, c in dirs.items()})
                      for lid, dirs in b.counts.items())
        self._bin = None
        return IntervalRecord(
            camera_id=self.camera_id, start=utc(start), end=utc(end), partial=partial, lines=lines,
            frames_processed=b.processed, frames_dropped=b.dropped,
            inference_ms_mean=round(b.inference_ms / b.processed, 3) if b.processed else None,
            observed_s=self._observed(b, start, end, partial_end),
        )

    def _observed(self, b: _Bin, start: float, end: float, partial_end: float | None) -> float:
        lo = max(start, self._started_at if self._started_at is not None else start)
        hi = min(end, partial_end) if partial_end is not None else end
        return round(max(0.0, hi - lo), 3)

    def advance(self, ts: float) -> list[IntervalRecord]:
        """Close every interval that ended at or before ``ts``.

        Intervals with no frames at all (a camera outage) are emitted too, with
        zero frames, so a subscriber sees the gap instead of silence.
        """
        if self._started_at is None:
            self._started_at = ts
        out: list[IntervalRecord] = []
        if self._bin is None:
            self._bin = _Bin(self._bin_start(ts), self.line_ids)
        while ts >= self._bin.start + self.interval_s:
            nxt = self._bin.start + self.interval_s
            out.append(self._close())
            self._bin = _Bin(nxt, self.line_ids)
        return out

    def add_frame(self, ts: float, inference_ms: float | None, dropped: int = 0,
                  events: Iterable[CrossingEvent] = ()) -> list[IntervalRecord]:
        """Account one processed frame (and frames dropped before it) at time ``ts``.

        Returns:
            Records of the intervals that this frame's time closed.
        """
        closed = self.advance(ts)
        b = self._bin
        assert b is not None
        if inference_ms is not None:
            b.processed += 1
            b.inference_ms += inference_ms
        b.dropped += dropped
        b.first_ts = ts if b.first_ts is None else b.first_ts
        b.last_ts = ts
        for ev in events:
            per_class = b.counts[ev.line_id][ev.direction]
            per_class[ev.class_name] = per_class.get(ev.class_name, 0) + 1
        return closed

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
        if out and not (self._bin.processed or self._bin.dropped):
            self._bin = None  # the source ended exactly on an interval boundary
        else:
            out.append(self._close(end_ts))
        return out
