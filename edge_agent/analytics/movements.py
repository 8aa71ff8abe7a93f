"""Crossings + zone presence -> MovementEvent: turning-movement counts.

A movement is a named origin -> destination pair of the camera's lines and
zones (``movements: [{id: north_left, from: n_entry, to: e_exit}]``). A track
*touches* a line when it crosses it (either direction) and a zone when it is
seen inside it. It completes a movement when it touches the destination after
(or in the same frame as) the origin; a track completes at most one movement,
the first, per trip through the junction, so a vehicle is in exactly one cell of
the turning-movement matrix. A track that crosses an origin line *after* it
completed its movement starts a new trip from that crossing: a vehicle that has
left the junction seldom drives back in (and then it is a second trip); far more
often the id now belongs to another vehicle, one revealed behind a vehicle that
drove off (the tracker's boxes slide from one onto the other) or one the stitcher
(``stitching.py``) took for a vehicle that had just left the view. Its crossings
are counted either way, and without the new trip its movement would be lost.
A track's touches are kept for ``forget_s`` after the tracker last
reported it, so a frame or two without a report does not lose its origin.

The tracker sometimes starts a new track on a vehicle while its old track still
holds a box on it (the old one lags a turning car, held by a detection beside it),
and the old track dies a few frames later: the origin was touched by the old id,
the destination by the new one, and the vehicle has no movement. The stitcher
cannot join them (both were reported at once), and giving the new track the old
id would move its crossings too. Two tracks whose boxes overlapped by IoU of
``TWIN_IOU`` or more, both matched to a detection in the same frame, were on one
vehicle then; a track that touches a destination without having touched any
origin takes the origin of such a twin that is gone without completing a
movement (the twin is then done). Crossings are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from edge_agent.config import MovementConfig
from edge_agent.tracking.tracker import iou_matrix
from edge_agent.types import CrossingEvent, MovementEvent, Tracks

TWIN_IOU = 0.5  # two matched tracks whose boxes overlap this much in one frame are on one vehicle


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
        self._done: dict[int, float] = {}                # track -> when it completed its movement
        self._twins: dict[int, set[int]] = {}            # track -> tracks seen on its vehicle with it
        self._origins = {m.from_ for m in movements}
        self._relevant = self._origins | {m.to for m in movements}

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
            self._done.pop(tid, None)
            for twin in self._twins.pop(tid, ()):
                self._twins.get(twin, set()).discard(tid)
        if not self.movements:
            return []
        ids = tracks.track_id.tolist()
        seen = np.flatnonzero(tracks.det_index >= 0)
        if len(seen) > 1:
            iou = iou_matrix(tracks.xyxy[seen], tracks.xyxy[seen])
            for i, j in zip(*np.nonzero(np.triu(iou >= TWIN_IOU, 1))):
                a, b = ids[seen[i]], ids[seen[j]]
                if a != b:
                    self._twins.setdefault(a, set()).add(b)
                    self._twins.setdefault(b, set()).add(a)
        new: dict[int, dict[str, float]] = {}  # track -> element touched this frame -> when
        for c in crossings:
            if c.line_id in self._relevant:
                new.setdefault(c.track_id, {})[c.line_id] = c.ts  # the interpolated crossing time
                done = self._done.get(c.track_id)
                if done is not None and c.line_id in self._origins and c.ts > done:  # a new trip
                    del self._done[c.track_id]
                    self._touched.pop(c.track_id, None)
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
                if m.to in elements and not (touched.keys() - elements.keys()) & self._origins:
                    self._take_origin(tid, m.from_, touched, touched[m.to], set(ids))
                if m.to in elements and m.from_ in touched and touched[m.from_] <= touched[m.to]:
                    k = int(cls.get(tid, -1))
                    name = self.names[k] if 0 <= k < len(self.names) else f"class{k}"
                    out.append(MovementEvent(self.camera_id, m.id, tid, name, touched[m.to]))
                    self._done[tid] = touched[m.to]
                    break
        return out

    def _take_origin(self, tid: int, origin: str, touched: dict[str, float], by: float, live: set[int]) -> None:
        """Give ``tid`` the touch of ``origin`` (no later than ``by``) of a twin that is gone without a movement."""
        for twin in sorted(self._twins.get(tid, ())):
            at = self._touched.get(twin, {}).get(origin)
            if twin not in live and twin not in self._done and at is not None and at <= by:
                touched[origin] = at
                self._done[twin] = at
                return
