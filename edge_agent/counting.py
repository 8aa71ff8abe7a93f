"""Tracks -> CrossingEvent: directional counting over line segments.

A counting line is the segment p1 -> p2 with an "in" side. Seen on the image,
walking from p1 to p2, ``right`` is on your right hand::

        p1 ●───────────────▶● p2
              left side (out)
        ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─   dead band (± hysteresis_px)
              right side (in)

A track is counted when its anchor point (bottom-centre of the box by
default) goes from one side to the other *through the segment itself*:
motion past the segment's ends, along its infinite extension, is not a
crossing. Sides are decided with a dead band of ``hysteresis_px`` around the
line: inside it a track keeps the side it had, so a box wobbling on the line
does not flip back and forth. A track is not counted twice in the same
direction in a row: it is counted again only after a crossing the other way
(someone walking back and forth over the line is counted every time), except
that a vehicle is not counted back over a line within ``reverse_s`` of being
counted over it: vehicles do not reverse over a line, but their boxes do, when
one is partly hidden behind another vehicle and its bottom edge moves back. A track
first seen inside the dead band, or first seen already on a side, is never
counted until it crosses.

The crossing time is interpolated between the two frames around it (where
the anchor's path meets the line), so headways are not rounded to the frame
period. Only tracks matched to a detection in this frame move the counter: a track
coasting on its Kalman prediction through an occlusion is not counted until
it is seen again, and then its path from the last seen position is tested.
A track's state is kept for ``forget_s`` after it was last reported (the
tracker stops reporting a track for a frame or two when two boxes merge), then
pruned, so memory is bounded by the tracks of the last few seconds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.types import Anchor, CrossingEvent, Direction, Tracks


def side_of(p1: npt.ArrayLike, p2: npt.ArrayLike, points: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Signed distance in pixels of (n, 2) points from the line through p1, p2.

    Positive is the right-hand side seen on the image walking p1 -> p2 (image
    y axis points down).
    """
    a = np.asarray(p1, np.float64)
    d = np.asarray(p2, np.float64) - a
    rel = np.asarray(points, np.float64) - a
    return (d[0] * rel[:, 1] - d[1] * rel[:, 0]) / float(np.hypot(*d))  # type: ignore[no-any-return]


def segments_intersect(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64],
                       a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each path segment p[i] -> q[i] meets the segment a -> b (touching counts)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)

    def cross(o: npt.NDArray[np.float64], u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return (u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0])

    d1 = cross(a, b, p)
    d2 = cross(a, b, q)
    d3 = cross(p, q, np.broadcast_to(a, p.shape))
    d4 = cross(p, q, np.broadcast_to(b, p.shape))
    return (d1 * d2 <= 0) & (d3 * d4 <= 0)  # type: ignore[no-any-return]


@dataclass
class _TrackState:
    side: int            # +1 right, -1 left
    point: npt.NDArray[np.float64]  # last anchor seen clearly on that side
    ts: float            # when it was there
    reported: float      # when the tracker last reported the track
    last_counted: Direction | None = None
    counted_ts: float = -np.inf  # when last_counted was counted


class LineCounter:
    """Counts tracks crossing one line segment.

    Args:
        line_id: id used in events.
        p1, p2: segment end points in frame pixels.
        in_side: ``right`` or ``left`` of p1 -> p2 as seen on the image.
        camera_id: copied into events.
        class_names: maps class ids to names.
        anchor: box point tested against the line.
        hysteresis_px: half-width of the dead band around the line.
        forget_s: a track not reported for this long is forgotten.
        reverse_s: a track of ``no_reverse`` classes is not counted back over the line this soon after it was
            counted over it (0: off).
        no_reverse: class names that do not reverse over a line (vehicles).
    """

    def __init__(self, line_id: str, p1: Sequence[float], p2: Sequence[float], in_side: str,
                 camera_id: str, class_names: Sequence[str], anchor: Anchor = Anchor.BOTTOM_CENTER,
                 hysteresis_px: float = 3.0, forget_s: float = 2.0, reverse_s: float = 0.0,
                 no_reverse: Collection[str] = ()):
        if in_side not in ("left", "right"):
            raise ValueError(f"in_side must be 'left' or 'right', got {in_side!r}")
        if tuple(p1) == tuple(p2):
            raise ValueError(f"line {line_id!r}: p1 and p2 are the same point {list(p1)}")
        if hysteresis_px < 0:
            raise ValueError(f"hysteresis_px must be >= 0, got {hysteresis_px}")
        if reverse_s < 0:
            raise ValueError(f"reverse_s must be >= 0, got {reverse_s}")
        self.line_id = line_id
        self.p1 = np.asarray(p1, np.float64)
        self.p2 = np.asarray(p2, np.float64)
        self.in_sign = 1 if in_side == "right" else -1
        self.camera_id = camera_id
        self.class_names = list(class_names)
        self.anchor = anchor
        self.hysteresis = float(hysteresis_px)
        self.forget_s = float(forget_s)
        self.reverse_s = float(reverse_s)
        self.no_reverse = frozenset(no_reverse)
        self._state: dict[int, _TrackState] = {}

    def __len__(self) -> int:
        """Tracks whose state is held (bounded by the tracker's live tracks)."""
        return len(self._state)

    def update(self, tracks: Tracks, ts: float) -> list[CrossingEvent]:
        """Feed one frame's tracks; return the crossings completed in it."""
        live = set(tracks.track_id.tolist())
        for tid, st in list(self._state.items()):
            if tid in live:
                st.reported = ts
            elif ts - st.reported > self.forget_s:
                del self._state[tid]
        seen = tracks.det_index >= 0
        if not seen.any():
            return []
        ids = tracks.track_id[seen]
        pts = tracks.anchors(self.anchor)[seen].astype(np.float64)
        dist = side_of(self.p1, self.p2, pts)
        sides = np.where(dist > self.hysteresis, 1, np.where(dist < -self.hysteresis, -1, 0))
        prev_pts = np.array([self._state[t].point if t in self._state else p for t, p in zip(ids.tolist(), pts)])
        through = segments_intersect(prev_pts.reshape(-1, 2), pts, self.p1, self.p2)
        events = []
        for i, (tid, side) in enumerate(zip(ids.tolist(), sides.tolist())):
            if side == 0:
                continue
            found = self._state.get(tid)
            if found is None:
                self._state[tid] = _TrackState(side, pts[i], ts, ts)
                continue
            st = found
            if side != st.side and through[i]:
                direction = Direction.IN if side == self.in_sign else Direction.OUT
                k = int(tracks.class_id[seen][i])
                name = self.class_names[k] if 0 <= k < len(self.class_names) else f"class{k}"
                backed = (st.last_counted is not None and name in self.no_reverse
                          and ts - st.counted_ts < self.reverse_s)  # its box moved back, not the vehicle
                if st.last_counted != direction and not backed:
                    st.last_counted, st.counted_ts = direction, ts
                    d0 = float(side_of(self.p1, self.p2, st.point[None])[0])
                    at = st.ts + (ts - st.ts) * d0 / (d0 - dist[i]) if d0 != dist[i] else ts
                    events.append(CrossingEvent(self.camera_id, self.line_id, tid, name, direction,
                                                round(float(min(max(at, st.ts), ts)), 4)))
            st.side, st.point, st.ts = side, pts[i], ts
        return events
