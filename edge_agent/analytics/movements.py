"""Crossings + zone presence -> MovementEvent: turning-movement counts.

A movement is a named origin -> destination pair of the camera's lines and
zones (``movements: [{id: north_left, from: n_entry, to: e_exit}]``). A track
*touches* a line when it crosses it (either direction) and a zone when it is
seen inside it. It completes a movement when it touches the destination after
(or in the same frame as) the origin; each track completes at most one
movement, the first, so a vehicle is in exactly one cell of the turning-movement
matrix. A track's touches are kept for ``forget_s`` after the tracker last
reported it, so a frame or two without a report does not lose its origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from edge_agent.config import MovementConfig
from edge_agent.types import CrossingEvent, MovementEvent, Tracks


class MovementCounter:
    """Counts configured turning movements of one camera."""

    def __init__(self, movements: Sequence[MovementConfig], camera_id: str, class_names: Sequence[str],
                 forget_s: float = 2.0):
        self.movements = list(movements)
        self.camera_id = camera_id
        self.names = list(class_names)
        self.forget_s = forget_s
        self._touched: dict[int, dict[str, float]] = {}  # track -> element -> first touch time
        self._reported: dict[int, float] = {}            # track -> when the tracker last reported it
        self._done: set[int] = set()
        self._relevant = {m.from_ for m in movements} | {m.to for m in movements}

    def __len__(self) -> int:
        return len(self._touched)

    def update(self, tracks: Tracks, ts: float, crossings: Iterable[CrossingEvent],
               zone_inside: Mapping[str, set[int]]) -> list[MovementEvent]:
        for tid in tracks.track_id.tolist():
            self._reported[tid] = ts
        # a track is forgotten forget_s after the tracker last reported it, not at the first frame it is
        # not reported (it skips a frame or two when boxes merge, and would lose its origin)
        for tid in [t for t, seen in self._reported.items() if ts - seen > self.forget_s]:
            del self._reported[tid]
            self._touched.pop(tid, None)
            self._done.discard(tid)
        if not self.movements:
            return []
        new: dict[int, dict[str, float]] = {}  # track -> element touched this frame -> when
        for c in crossings:
            if c.line_id in self._relevant:
                new.setdefault(c.track_id, {})[c.line_id] = c.ts  # the interpolated crossing time
        for zid, tids in zone_inside.items():
            if zid in self._relevant:
                for tid in tids:
                    new.setdefault(tid, {})[zid] = ts
        if not new:
            return []
        cls = dict(zip(tracks.track_id.tolist(), tracks.class_id.tolist()))
        out = []
        for tid, elements in new.items():
            touched = self._touched.setdefault(tid, {})
            for e, at in elements.items():
                touched.setdefault(e, at)
            if tid in self._done:
                continue
            for m in self.movements:
                if m.to in elements and m.from_ in touched and touched[m.from_] <= touched[m.to]:
                    k = int(cls.get(tid, -1))
                    name = self.names[k] if 0 <= k < len(self.names) else f"class{k}"
                    out.append(MovementEvent(self.camera_id, m.id, tid, name, touched[m.to]))
                    self._done.add(tid)
                    break
        return out
