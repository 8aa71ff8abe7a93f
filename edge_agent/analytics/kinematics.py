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
speed at a line crossing is the Theil-Sen slope (the median of the slopes between
every two positions, which up to about 29 % of bad positions do not move: a vehicle found
again after it was half hidden brings its half boxes into the window) over ``window_s``
(``statistics.speed_window_s``) centred on the crossing time
(:meth:`Kinematics.speed_at`), once the track has been seen for half a window
past it: a trailing window lags by half its length, which on a vehicle braking
for or accelerating out of a junction is several km/h.

With a calibration and the frame size, the positions fitted are not the boxes'
bottom-centres but the vehicles' footprint centres
(:meth:`edge_agent.geometry.PinholeCamera.footprint_centres`, from the camera the
calibration implies, the vehicle's class size and its heading): a box's
bottom-centre slides along a vehicle as the camera sees it from the front, the
side and then the back, which takes several per cent off its speed. A track's
positions get that correction from the first frame it moves faster than
``MIN_HEADING_MPS`` (its heading is known then), its earlier ones at that moment
too, so one window never mixes the two kinds of point.

Without a calibration the same is done in image pixels; speeds are then in
px/s, and no km/h figure is reported anywhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice

import numpy as np
import numpy.typing as npt
from scipy.stats import theilslopes

from edge_agent.geometry import GroundPlane, PinholeCamera
from edge_agent.types import Anchor, Detections, Tracks, anchor_points

MIN_SPAN_FRACTION = 0.3  # a fit needs points spanning at least this share of the window
MS_TO_KMH = 3.6
KEEP_WINDOWS = 2.0  # history kept, in windows (a crossing's centred window reaches back half of one)
MIN_HEADING_MPS = 1.0  # a vehicle's heading is taken from its fitted velocity when faster than this


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


def _slopes(t: npt.NDArray[np.float64], xy: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]
            ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Least-squares slopes (k, 2) of each row's masked points, and each point's distance to its line (k, m)."""
    w = mask.astype(np.float64)
    n = np.maximum(w.sum(axis=1), 1.0)
    tc = (t - (t * w).sum(axis=1, keepdims=True) / n[:, None]) * w
    pc = (xy - (xy * w[..., None]).sum(axis=1, keepdims=True) / n[:, None, None]) * w[..., None]
    den = (tc * tc).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.einsum("km,kmd->kd", tc, pc) / den[:, None]
    v[den <= 0] = np.nan
    resid = pc - tc[..., None] * np.nan_to_num(v)[:, None, :]
    return v, np.hypot(resid[..., 0], resid[..., 1]) * w


def fit_velocities(t: npt.NDArray[np.float64], xy: npt.NDArray[np.float64],
                   mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Robust straight-line slopes of k point sets at once.

    Args:
        t: (k, m) times; xy: (k, m, 2) positions; mask: (k, m) which points each set has.

    Returns:
        (k, 2) velocities; NaN for a set of fewer than 2 points. With 5 points or more, points
        further than three robust standard deviations (1.4826 x the median distance) from the
        first line are dropped and the line is fitted again, if at least 2 points remain.
    """
    v, r = _slopes(t, xy, mask)
    n = mask.sum(axis=1)
    v[n < 2] = np.nan
    robust = (n >= 5) & np.isfinite(v).all(axis=1)
    if robust.any():
        ranked = np.sort(np.where(mask, r, np.inf), axis=1)
        rows = np.arange(len(n))
        hi, lo = ranked[rows, np.minimum(n // 2, r.shape[1] - 1)], ranked[rows, np.maximum((n - 1) // 2, 0)]
        mad = (hi + lo) / 2  # the median of each row's distances
        keep = mask & (r <= 3.0 * 1.4826 * mad[:, None] + 1e-9)
        kept = keep.sum(axis=1)
        again = robust & (kept >= 2) & (kept < n)
        if again.any():
            v[again] = _slopes(t[again], xy[again], keep[again])[0]
    return v


class Kinematics:
    """Keeps each track's recent anchor positions and fits its velocity.

    Args:
        plane: the camera's calibration, or None for pixel units.
        window_s: length of the centred window of a crossing's speed, seconds.
        trailing_s: length of the trailing window of the current velocity, seconds.
        anchor: box point that touches the road.
        sizes: class id -> (length, width, height) in metres of the vehicles whose footprint centre is
            fitted instead of their bottom-centre (with a calibration, the bottom-centre anchor and the
            frame size); empty: none.
    """

    def __init__(self, plane: GroundPlane | None, window_s: float = 2.0, anchor: Anchor = Anchor.BOTTOM_CENTER,
                 trailing_s: float = 1.0, sizes: dict[int, tuple[float, float, float]] | None = None):
        if window_s <= 0 or trailing_s <= 0:
            raise ValueError(f"window_s and trailing_s must be > 0, got {window_s} and {trailing_s}")
        self.plane = plane
        self.window_s = float(window_s)
        self.trailing_s = float(trailing_s)
        self.anchor = anchor
        self._hist: dict[int, deque[list[float]]] = {}  # per track: [t, x, y, footprint x, footprint y]
        self._velocity: dict[int, npt.NDArray[np.float64]] = {}
        self._heading: dict[int, float] = {}
        self.sizes = dict(sizes or {}) if plane is not None and anchor is Anchor.BOTTOM_CENTER else {}
        self.camera: PinholeCamera | None = None
        self._frame_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self._hist)

    def update(self, tracks: Tracks, ts: float, detections: Detections | None = None,
               frame_size: tuple[int, int] | None = None) -> Motion:
        """Add the frame's seen positions; return positions and velocities of every reported track.

        A track coasting without a detection keeps its last fitted velocity;
        its position is the tracker's prediction. ``frame_size`` (width, height) lets the camera be
        recovered from the calibration, for the footprint centres.
        """
        if frame_size is not None and frame_size != self._frame_size and self.sizes and self.plane is not None:
            self._frame_size = frame_size
            self.camera = PinholeCamera.from_plane(self.plane, *frame_size)
        # a track no longer reported keeps its history while it may still be asked for the speed of a
        # crossing it made (released when the track ends) or come back (the stitcher gives it its id again)
        live = set(tracks.track_id.tolist())
        keep_s = KEEP_WINDOWS * max(self.window_s, self.trailing_s)
        for tid in [t for t, h in self._hist.items() if t not in live and (not h or ts - h[-1][0] > keep_s)]:
            del self._hist[tid]
            self._velocity.pop(tid, None)
            self._heading.pop(tid, None)
        pts = tracks.anchors(self.anchor).astype(np.float64)
        if detections is not None and len(detections):
            # a seen track's position is its detection's anchor: the filtered box lags when the box grows
            seen_rows = np.flatnonzero(tracks.det_index >= 0)
            pts[seen_rows] = anchor_points(detections.xyxy[tracks.det_index[seen_rows]], self.anchor)
        pos = self.plane.to_ground(pts) if self.plane is not None else pts
        n = len(tracks)
        vel = np.full((n, 2), np.nan)
        ids = tracks.track_id.tolist()
        fresh = np.isfinite(pos).all(axis=1) & (tracks.det_index >= 0)
        since, oldest = ts - self.trailing_s - 1e-9, ts - KEEP_WINDOWS * max(self.window_s, self.trailing_s) - 1e-9
        for i, tid in enumerate(ids):
            hist = self._hist.setdefault(tid, deque())
            if fresh[i]:
                hist.append([ts, float(pos[i, 0]), float(pos[i, 1]), np.nan, np.nan])
                while hist and hist[0][0] < oldest:
                    hist.popleft()
        if self.camera is not None:
            self._footprints(ids, tracks.class_id.tolist(), fresh)
        fit_ids: list[int] = []
        lengths: list[int] = []
        rows: list[list[float]] = []
        for i, tid in enumerate(ids):
            if fresh[i]:
                hist = self._hist[tid]
                k = 0
                for h in reversed(hist):  # the trailing window: the newest rows since ``since``
                    if h[0] < since:
                        break
                    k += 1
                if k >= 2 and hist[-1][0] - hist[-k][0] >= MIN_SPAN_FRACTION * self.trailing_s:
                    fit_ids.append(tid)
                    lengths.append(k)
                    rows += islice(hist, len(hist) - k, None)
        if fit_ids:  # one batched fit for every track with a fresh trailing window
            for tid, v in zip(fit_ids, fit_velocities(*_windows(np.array(rows), np.array(lengths)))):
                self._velocity[tid] = v
        for i, tid in enumerate(ids):
            if tid in self._velocity:
                vel[i] = self._velocity[tid]
        speed = np.hypot(vel[:, 0], vel[:, 1])
        if self.plane is not None:
            speed = speed * MS_TO_KMH
        return Motion(position=pos, velocity=vel, speed=speed, calibrated=self.plane is not None)

    def _footprints(self, ids: list[int], classes: list[int], fresh: npt.NDArray[np.bool_]) -> None:
        """Footprint centres of the fresh positions of vehicles with a known heading, and of all their
        earlier positions the first time their heading is known."""
        assert self.camera is not None and self.plane is not None
        todo: list[list[float]] = []
        heading: list[float] = []
        size: list[tuple[float, float, float]] = []
        for i, tid in enumerate(ids):
            dims = self.sizes.get(classes[i])
            if not fresh[i] or dims is None:
                continue
            had = tid in self._heading
            v = self._velocity.get(tid)
            if v is not None and np.all(np.isfinite(v)) and float(np.hypot(*v)) >= MIN_HEADING_MPS:
                self._heading[tid] = float(np.arctan2(v[1], v[0]))
            if tid not in self._heading:
                continue
            # the new position; the first time the heading is known, every one held
            rows = [self._hist[tid][-1]] if had else [h for h in self._hist[tid] if np.isnan(h[3])]
            todo += rows
            heading += [self._heading[tid]] * len(rows)
            size += [dims] * len(rows)
        if todo:
            raw = np.array([h[1:3] for h in todo])
            centres = self.camera.footprint_centres(self.plane, raw, heading, size)
            for h, (x, y) in zip(todo, centres.tolist()):
                h[3], h[4] = x, y

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
        arr = _fitted_points(arr[(arr[:, 0] >= t - half - 1e-9) & (arr[:, 0] <= t + half + 1e-9)])
        if len(arr) < 2 or arr[-1, 0] - arr[0, 0] < MIN_SPAN_FRACTION * self.window_s:
            return None
        # Theil-Sen (the median of the slopes between every two points), per axis: up to about 29 % of the
        # window may be off (the boxes of a vehicle half hidden before it was found again) without moving it
        v = [theilslopes(arr[:, k], arr[:, 0])[0] for k in (1, 2)]
        speed = float(np.hypot(*v))
        return speed * MS_TO_KMH if self.plane is not None else speed


def _windows(rows: npt.NDArray[np.float64], lengths: npt.NDArray[np.int64]
             ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """:func:`fit_velocities`' (t, xy, mask) from the (sum of lengths, 5) history rows of consecutive windows.

    Each window's points are its footprint centres where every row of it has one (as :func:`_fitted_points`).
    """
    starts = np.cumsum(lengths) - lengths
    owner = np.repeat(np.arange(len(lengths)), lengths)
    col = np.arange(len(rows)) - starts[owner]
    footprint = np.logical_and.reduceat(np.isfinite(rows[:, 3:5]).all(axis=1), starts)[owner]
    t = np.zeros((len(lengths), int(lengths.max())))
    xy = np.zeros((*t.shape, 2))
    mask = np.zeros(t.shape, bool)
    t[owner, col] = rows[:, 0]
    xy[owner, col] = np.where(footprint[:, None], rows[:, 3:5], rows[:, 1:3])
    mask[owner, col] = True
    return t, xy, mask


def _fitted_points(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(m, 3) t, x, y to fit from (m, 5) history rows: the footprint centres where every row has one."""
    if len(rows) and np.isfinite(rows[:, 3:5]).all():
        return rows[:, [0, 3, 4]]
    return rows[:, :3]
