"""Tracks -> ground positions and speeds.

Speed from frame-to-frame differences of a box is noise: a box that jitters by
2 px at 10 fps "moves" at 20 px/s, which far from the camera is tens of km/h.
Instead each track keeps its anchor's ground-plane positions (metres, through
the calibration; the matched detection's box, not the filtered one, which lags
when a box grows), and its velocity is the slope of a straight-line fit of
x(t) and y(t) over a time window; points more than three robust standard
deviations off the line (a box that jumped when a vehicle was half occluded)
are dropped and the line refitted once.

The velocity of the latest frame (queues, stopped and wrong-way vehicles) is
fitted over the trailing ``trailing_s`` (``statistics.motion_window_s``). The
speed at a line crossing is fitted over ``window_s``
(``statistics.speed_window_s``) centred on the crossing time
(:meth:`Kinematics.speed_at`), once the track has been seen for half a window
past it: a trailing window lags by half its length, which on a vehicle braking
for or accelerating out of a junction is several km/h.

Without a calibration the same is done in image pixels; speeds are then in
px/s, and no km/h figure is reported anywhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.geometry import GroundPlane
from edge_agent.types import Anchor, Detections, Tracks, anchor_points

MIN_SPAN_FRACTION = 0.3  # a fit needs points spanning at least this share of the window
MS_TO_KMH = 3.6
KEEP_WINDOWS = 2.0  # history kept, in windows (a crossing's centred window reaches back half of one)


@dataclass(frozen=True)
class Motion:
    """Per-track kinematics of one frame, rows aligned with the frame's Tracks.

    Attributes:
        position: (n, 2) anchor on the ground in metres (image pixels without calibration).
        velocity: (n, 2) fitted velocity, metres (or pixels) per second; NaN until enough history.
        speed: (n,) |velocity|; km/h with a calibration, px/s without.
        calibrated: whether units are metres and km/h.
    """

    position: npt.NDArray[np.float64]
    velocity: npt.NDArray[np.float64]
    speed: npt.NDArray[np.float64]
    calibrated: bool


def fit_velocity(t: npt.NDArray[np.float64], xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Robust straight-line slope of (m, 2) positions over (m,) times; NaN if fewer than 2 points."""
    if len(t) < 2:
        return np.full(2, np.nan)

    def slope(tt: npt.NDArray[np.float64], pp: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        tc = tt - tt.mean()
        den = float(tc @ tc)
        if den <= 0:
            return np.full(2, np.nan), np.zeros(len(tt))
        v = (tc @ (pp - pp.mean(axis=0))) / den
        resid = pp - pp.mean(axis=0) - np.outer(tc, v)
        return v, np.hypot(resid[:, 0], resid[:, 1])

    v, r = slope(t, xy)
    if len(t) >= 5 and np.isfinite(v).all():
        mad = float(np.median(r))
        keep = r <= 3.0 * 1.4826 * mad + 1e-9
        if 2 <= keep.sum() < len(t):
            v, _ = slope(t[keep], xy[keep])
    return v


class Kinematics:
    """Keeps each track's recent anchor positions and fits its velocity.

    Args:
        plane: the camera's calibration, or None for pixel units.
        window_s: length of the centred window of a crossing's speed, seconds.
        trailing_s: length of the trailing window of the current velocity, seconds.
        anchor: box point that touches the road.
    """

    def __init__(self, plane: GroundPlane | None, window_s: float = 2.0, anchor: Anchor = Anchor.BOTTOM_CENTER,
                 trailing_s: float = 1.0):
        if window_s <= 0 or trailing_s <= 0:
            raise ValueError(f"window_s and trailing_s must be > 0, got {window_s} and {trailing_s}")
        self.plane = plane
        self.window_s = float(window_s)
        self.trailing_s = float(trailing_s)
        self.anchor = anchor
        self._hist: dict[int, deque[tuple[float, float, float]]] = {}
        self._velocity: dict[int, npt.NDArray[np.float64]] = {}

    def __len__(self) -> int:
        return len(self._hist)

    def update(self, tracks: Tracks, ts: float, detections: Detections | None = None) -> Motion:
        """Add the frame's seen positions; return positions and velocities of every reported track.

        A track coasting without a detection keeps its last fitted velocity;
        its position is the tracker's prediction.
        """
        live = set(tracks.track_id.tolist())
        for tid in [t for t in self._hist if t not in live]:
            del self._hist[tid]
            self._velocity.pop(tid, None)
        pts = tracks.anchors(self.anchor).astype(np.float64)
        if detections is not None and len(detections):
            # a seen track's position is its detection's anchor: the filtered box lags when the box grows
            seen_rows = np.flatnonzero(tracks.det_index >= 0)
            pts[seen_rows] = anchor_points(detections.xyxy[tracks.det_index[seen_rows]], self.anchor)
        pos = self.plane.to_ground(pts) if self.plane is not None else pts
        n = len(tracks)
        vel = np.full((n, 2), np.nan)
        for i, (tid, seen) in enumerate(zip(tracks.track_id.tolist(), (tracks.det_index >= 0).tolist())):
            hist = self._hist.setdefault(tid, deque())
            if seen and np.isfinite(pos[i]).all():
                hist.append((ts, float(pos[i, 0]), float(pos[i, 1])))
                while hist and hist[0][0] < ts - KEEP_WINDOWS * max(self.window_s, self.trailing_s) - 1e-9:
                    hist.popleft()
                arr = np.asarray(hist)
                arr = arr[arr[:, 0] >= ts - self.trailing_s - 1e-9]
                if len(arr) >= 2 and arr[-1, 0] - arr[0, 0] >= MIN_SPAN_FRACTION * self.trailing_s:
                    self._velocity[tid] = fit_velocity(arr[:, 0], arr[:, 1:])
            if tid in self._velocity:
                vel[i] = self._velocity[tid]
        speed = np.hypot(vel[:, 0], vel[:, 1])
        if self.plane is not None:
            speed = speed * MS_TO_KMH
        return Motion(position=pos, velocity=vel, speed=speed, calibrated=self.plane is not None)

    def last_seen(self, track_id: int) -> float | None:
        hist = self._hist.get(track_id)
        return hist[-1][0] if hist else None

    def speed_at(self, track_id: int, t: float) -> float | None:
        """Speed (km/h, or px/s without calibration) fitted over the window centred on time ``t``.

        Uses whatever of that window the track's history holds; None if it
        spans less than a third of the window.
        """
        hist = self._hist.get(track_id)
        if not hist:
            return None
        arr = np.asarray(hist)
        half = self.window_s / 2
        arr = arr[(arr[:, 0] >= t - half - 1e-9) & (arr[:, 0] <= t + half + 1e-9)]
        if len(arr) < 2 or arr[-1, 0] - arr[0, 0] < MIN_SPAN_FRACTION * self.window_s:
            return None
        v = fit_velocity(arr[:, 0], arr[:, 1:])
        speed = float(np.hypot(*v))
        return speed * MS_TO_KMH if self.plane is not None else speed
