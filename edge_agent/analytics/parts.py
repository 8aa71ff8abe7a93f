"""Tracks -> Tracks for line counting: a track that lives inside another track's box is a part of that object.

The detector sometimes boxes a part of a large vehicle as a vehicle of its own:
the cab of a truck as a car, the front half of a truck as a smaller truck. The
box overlaps the whole vehicle's box too little for the tracker's duplicate rule
(``tracker.birth_max_iou``), so it starts a track, and that track crosses the
counting lines with the vehicle, a few frames earlier or later than the
vehicle's own track (its bottom edge is not the vehicle's), or takes boxes of the
vehicle that move its bottom edge over a line while nothing moves: each is an
extra count. Rejecting these boxes in the tracker costs the real-world tracking
benchmark (people walking one behind another give nested boxes too), but the
counters can tell: a part stays inside the box of its vehicle, while a vehicle
that passes in front of or behind another one is inside its box only while they
pass.

:class:`Parts` keeps, per (counting) id, how many of the frames it was reported
in had its box at least ``inside`` of its area within the box of a larger track
reported in the same frame; a track for which that holds in at least ``share``
of its frames is a part and is left out of the line counters (and so of the
turning movements, which come from the crossings). A track that was seen on its
own first (a car that then passes behind a bus, re-found with its id by the
stitcher) keeps its own frames and is counted as before. A part that drives off
on its own later is counted from then on. Zones, speeds and the tracks the
tracker reports are unchanged.

A vehicle that comes into view a piece at a time (an articulated truck driving in
past the frame's edge, or out from behind another vehicle) is first boxed by what
is in sight, its cab; when the whole of it is, the detector boxes it whole, a new
track starts on that box and the first one stays on the cab. The cab's track was
its vehicle's own in its first frames, so its share stays low for as long as it
matters, while its crossings are a few frames off the truck's (each an extra
count), and its box can take the line past a segment's end where the truck does not
pass. A track is therefore also a part while it has been inside a larger track's
box in every frame since that track appeared around it: a box that is first seen
around another one and keeps it inside is on the whole of its vehicle. A car that
drives into the box of a bus, or that a bus drives over, was nested after the bus
was first seen, and is counted as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.types import Tracks

AROUND_S = 0.2  # a larger track first seen at most this long before a track's nesting began appeared around it


@dataclass
class _Record:
    nested: int     # frames reported inside a larger track's box
    frames: int     # frames reported
    reported: float  # when last reported
    first: float     # when first reported
    nested_since: float | None = None  # when its current run of nested frames began; None: not nested


class Parts:
    """Drops the tracks that are parts of another track's object from the tracks given to the line counters.

    Args:
        inside: share of a track's box area within a larger track's box for it to be nested in a frame.
        share: share of its frames a track must have been nested in to be a part (0 disables the filter).
        forget_s: a track not reported for this long is forgotten.
    """

    def __init__(self, inside: float = 0.8, share: float = 0.8, forget_s: float = 2.0):
        if not 0.0 < inside <= 1.0:
            raise ValueError(f"inside must be in (0, 1], got {inside}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        self.inside = inside
        self.share = share
        self.forget_s = forget_s
        self._seen: dict[int, _Record] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def update(self, tracks: Tracks, ts: float) -> Tracks:
        """The frame's tracks less the parts."""
        for tid in [t for t, r in self._seen.items() if ts - r.reported > self.forget_s]:
            del self._seen[tid]
        n = len(tracks.track_id)
        if self.share <= 0 or not n:
            return tracks
        within = np.zeros((n, n), bool)
        if n > 1:
            b = tracks.xyxy.astype(np.float64)
            wh = np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2])
            np.maximum(wh, 0.0, out=wh)
            area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            within[:] = wh[..., 0] * wh[..., 1] >= self.inside * area[:, None]  # row's box inside column's box
            within &= area[None, :] > area[:, None]  # ... and the column's box is the larger one
            within &= area[:, None] > 0
        nested = np.zeros(n, bool)
        within.any(axis=1, out=nested)
        records = []
        for i, tid in enumerate(tracks.track_id.tolist()):
            r = self._seen.get(tid)
            if r is None:
                r = self._seen[tid] = _Record(0, 0, ts, ts)
            r.nested += int(nested[i])
            r.frames += 1
            r.reported = ts
            if not nested[i]:
                r.nested_since = None
            elif r.nested_since is None:
                r.nested_since = ts
            records.append(r)
        keep = np.ones(n, bool)
        for i, r in enumerate(records):
            keep[i] = r.nested < self.share * r.frames
            since = r.nested_since  # None where one id came twice in the frame, the other copy not nested
            if keep[i] and nested[i] and since is not None:
                # nested ever since a larger track appeared around it: that track is on its whole vehicle
                keep[i] = not any(records[j].first >= since - AROUND_S for j in np.flatnonzero(within[i]))
        if keep.all():
            return tracks
        return tracks[keep]


__all__ = ["Parts"]
