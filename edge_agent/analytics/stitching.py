"""Tracks -> Tracks for counting: a track lost for a moment keeps its id when its object is found again.

An object hidden behind another vehicle for half a second or more (a motorcycle
behind a bus) is lost by the tracker, and when it is seen again it starts a new
track. If it crossed a counting line, or left the junction, while hidden, the old
track ended on one side and the new one started on the other: neither counts the
crossing, and the turning movement loses its origin. The tracker itself cannot
wait longer without taking over the wrong person in a crowd (its MOT benchmark
says so), but the counters only need to know that two tracks were one vehicle.

:class:`Stitcher` gives a new track the id of a track that stopped being reported
at most ``max_gap_s`` earlier when both have the same class, similar sizes (area
within a factor of 4: a vehicle is often found again while still half behind what hid
it), and the new box's centre is on the old one's way: near the
path from where it was last seen to where it would be by now at its last velocity
(it may have braked or begun to turn while hidden), within ``gate`` times the new
box's larger side plus half the distance the old track would have travelled in the
gap. When both are moving (more than half their size per second), their
directions must be less than 90 degrees apart: a car driving into the view where
another one just left it is not that car. Among several candidates the closest one wins. Everything
downstream (line counters, speeds, zones, movements) then sees one id. The
tracks the tracker reports (and its benchmark) are unchanged.

The tracker may also start the new track while it still reports the old one, coasting
on its prediction without a detection (a bus drifting out from behind a truck: the
old track follows the truck's edge for a few frames while a new one starts on the
bus). A coasting track is a candidate too; when the new track takes its id, the old
tracker id is *superseded*: it is left out of the counters for as long as it coasts,
and becomes a vehicle of its own again only if a detection is matched to it.

A vehicle driving behind another one often goes out of sight a slice at a time: its
box shrinks to a sliver before the tracker loses it, and the sliver's size and centre
say little about the whole vehicle that comes out on the other side. Each lost track
is therefore also tried as it was at its largest in its last second of view.

Two tracks never get one id at once: if the tracker finds the old track again while
the new one that took its id is still reported, the new one goes back to its own id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edge_agent.types import Tracks

MAX_AREA_RATIO = 4.0  # a box half as wide and half as high: the vehicle still half behind what hid it
WHOLE_S = 1.0  # a lost track is also tried with its largest box of its last this many seconds in view
KEEP_S = 5.0  # a tracker id is remembered this long after its last report (the tracker keeps lost tracks ~1 s)


@dataclass(frozen=True)
class _Last:
    """Where a (stitched) track was last seen with a detection."""

    ts: float
    cx: float
    cy: float
    vx: float
    vy: float
    w: float
    h: float
    class_id: int


class Stitcher:
    """Maps the tracker's ids to counting ids, joining a track to one lost shortly before.

    Args:
        max_gap_s: longest time between the old track's last report and the new one's first.
        gate: distance allowed beside the old track's path, in sizes of the new box.
    """

    def __init__(self, max_gap_s: float = 2.0, gate: float = 1.0):
        if max_gap_s < 0 or gate < 0:
            raise ValueError(f"max_gap_s and gate must be >= 0, got {max_gap_s} and {gate}")
        self.max_gap_s = max_gap_s
        self.gate = gate
        self._alias: dict[int, int] = {}   # tracker id -> counting id (only where they differ)
        self._taken: dict[int, float] = {}  # tracker id -> when it took its counting id (the keys of _alias)
        self._known: dict[int, float] = {}  # tracker id -> when it was last reported
        self._last: dict[int, _Last] = {}   # counting id -> last seen
        self.stitched = 0                   # tracks given an earlier track's id, all told
        self._superseded: set[int] = set()  # coasting tracker ids whose vehicle a new track took over
        self._whole: dict[int, _Last] = {}  # counting id -> its largest box in its last WHOLE_S seen

    def update(self, tracks: Tracks, ts: float) -> Tracks:
        """The frame's tracks with counting ids (the same object as before when a track was re-found)."""
        if self.max_gap_s <= 0:
            return tracks
        raw = tracks.track_id.tolist()
        seen = tracks.det_index >= 0
        self._superseded -= {tid for i, tid in enumerate(raw) if seen[i]}  # matched again: a vehicle after all
        # lost: not reported in this frame. A track still reported (coasting) in the previous frame counts:
        # the tracker may drop it in the very frame it starts a new track on the same vehicle.
        here = {self._alias.get(tid, tid) for tid in raw if tid in self._known and tid not in self._superseded}
        lost = {cid: last for cid, last in self._last.items() if cid not in here and ts - last.ts <= self.max_gap_s}
        coasting = {self._alias.get(tid, tid): tid for i, tid in enumerate(raw)
                    if tid in self._known and not seen[i] and tid not in self._superseded}
        lost.update({cid: self._last[cid] for cid in coasting if cid in self._last})
        box = tracks.xyxy.astype(np.float64)
        out: list[int] = []
        for i, tid in enumerate(raw):
            if tid not in self._known:
                target = self._match(box[i], tracks.velocity[i], int(tracks.class_id[i]), ts, lost)
                if target is None:  # seen whole before it went out of sight a slice at a time?
                    wholes = {cid: self._whole[cid] for cid in lost if cid in self._whole}
                    target = self._match(box[i], tracks.velocity[i], int(tracks.class_id[i]), ts, wholes)
                if target is not None:
                    self._alias[tid] = target
                    self._taken[tid] = ts
                    del lost[target]
                    if target in coasting:
                        self._superseded.add(coasting[target])
                    self.stitched += 1
            out.append(self._alias.get(tid, tid))
        for tid in raw:
            self._known[tid] = ts
        if self._superseded & set(raw):
            keep = np.array([tid not in self._superseded for tid in raw])
            tracks = tracks[keep]
            raw = tracks.track_id.tolist()
            out = [cid for cid, k in zip(out, keep) if k]
            box, seen = box[keep], seen[keep]
        if len(set(out)) < len(out):  # the old track is back while the one that took its id is still here
            holder: dict[int, int] = {}  # counting id -> row keeping it: the track that had it first
            for i, cid in enumerate(list(out)):
                j = holder.setdefault(cid, i)
                if j != i:  # the one that took it later goes back to its own id
                    later = i if self._taken.get(raw[i], -np.inf) >= self._taken.get(raw[j], -np.inf) else j
                    del self._alias[raw[later]], self._taken[raw[later]]
                    out[later] = raw[later]
                    holder[cid] = i + j - later
        ids = np.asarray(out, np.int64)
        for i, cid in enumerate(out):
            if seen[i]:
                (x1, y1, x2, y2), (vx, vy) = box[i], tracks.velocity[i]
                last = _Last(ts, (x1 + x2) / 2, (y1 + y2) / 2, float(vx), float(vy), x2 - x1, y2 - y1,
                             int(tracks.class_id[i]))
                self._last[cid] = last
                whole = self._whole.get(cid)
                if whole is None or last.w * last.h >= whole.w * whole.h or ts - whole.ts > WHOLE_S:
                    self._whole[cid] = last
        present = set(out)
        for cid in [c for c, last in self._last.items() if ts - last.ts > self.max_gap_s and c not in present]:
            del self._last[cid]
            self._whole.pop(cid, None)
        # a tracker id not reported for a while is gone for good (the tracker never reuses ids)
        keep_s = self.max_gap_s + KEEP_S
        for tid in [t for t, last_ts in self._known.items() if ts - last_ts > keep_s]:
            del self._known[tid]
            self._alias.pop(tid, None)
            self._taken.pop(tid, None)
            self._superseded.discard(tid)
        return tracks if ids.tolist() == raw else replace(tracks, track_id=ids)

    def _match(self, box: np.ndarray, velocity: np.ndarray, class_id: int, ts: float,
               lost: dict[int, _Last]) -> int | None:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        vx, vy = float(velocity[0]), float(velocity[1])
        moving = np.hypot(vx, vy) > 0.5 * max(w, h)  # more than half its size per second
        best, best_d = None, np.inf
        for cid, last in lost.items():
            if last.class_id != class_id:
                continue
            if moving and np.hypot(last.vx, last.vy) > 0.5 * max(last.w, last.h) and vx * last.vx + vy * last.vy <= 0:
                continue  # both moving, in directions more than 90 degrees apart: another vehicle
            ratio = (w * h) / max(last.w * last.h, 1e-9)
            if not 1 / MAX_AREA_RATIO <= ratio <= MAX_AREA_RATIO:
                continue
            gap = ts - last.ts
            d = _to_path(cx, cy, last, gap)
            allowed = self.gate * max(w, h) + 0.5 * float(np.hypot(last.vx, last.vy)) * gap
            if d <= allowed and d < best_d:
                best, best_d = cid, d
        return best


def _to_path(x: float, y: float, last: _Last, gap: float) -> float:
    """Distance from (x, y) to the path from where ``last`` was seen to where it would be ``gap`` s later.

    A hidden vehicle may have braked or begun to turn: anywhere along that path is as likely as its end.
    """
    dx, dy = last.vx * gap, last.vy * gap
    n2 = dx * dx + dy * dy
    t = 0.0 if n2 == 0 else min(max(((x - last.cx) * dx + (y - last.cy) * dy) / n2, 0.0), 1.0)
    return float(np.hypot(x - last.cx - t * dx, y - last.cy - t * dy))


__all__ = ["Stitcher"]
