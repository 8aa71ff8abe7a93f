"""Detections -> Tracks: ByteTrack-style association on a batched Kalman filter.

Per frame (call :meth:`Tracker.update` for every processed frame, also when
there are no detections, so that tracks age):

1. Predict every track to the frame's timestamp (real elapsed time, so
   frames skipped by an fps cap or an overloaded box do not break tracks).
2. Confirmed tracks <-> high-score detections, by IoU (Hungarian).
3. Confirmed tracks that were matched on the previous frame and are still
   free <-> low-score detections (ByteTrack's second stage: an occluded or
   blurred object keeps its track through a low-score detection).
4. Tentative tracks <-> remaining high-score detections.
5. Remaining high-score detections above ``new_track_threshold`` start
   tentative tracks; a tentative track that misses a frame is dropped, one
   matched ``min_hits`` times is confirmed and gets the next id.
6. Confirmed tracks unmatched for longer than ``max_age_s`` are dropped.

Memory is bounded: only live tracks are kept, and a track's state is a fixed
number of numbers plus a class histogram bounded by the number of classes.
Ids are given per Tracker instance, increase, and are never reused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge_agent.tracking.kalman import KalmanBoxModel, xyxy_to_z, z_to_xyxy
from edge_agent.types import Detections, Tracks


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker thresholds (see the module docstring for where each applies)."""

    high_threshold: float = 0.5
    low_threshold: float = 0.1
    new_track_threshold: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    min_hits: int = 3
    max_age_s: float = 1.0
    kalman: KalmanBoxModel = field(default_factory=KalmanBoxModel)

    def __post_init__(self) -> None:
        for name in ("high_threshold", "low_threshold", "new_track_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("match_iou", "low_match_iou"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        if self.low_threshold > self.high_threshold:
            raise ValueError(f"low_threshold ({self.low_threshold}) must not exceed "
                             f"high_threshold ({self.high_threshold})")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if self.max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {self.max_age_s}")


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """(n, m) IoU of (n, 4) and (m, 4) xyxy boxes."""
    a = np.asarray(a, np.float64)[:, None, :]
    b = np.asarray(b, np.float64)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)  # type: ignore[no-any-return]


def match(iou: npt.NDArray[np.float64], min_iou: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Optimal one-to-one assignment maximising total IoU, pairs below ``min_iou`` refused.

    Returns:
        (rows, cols) of the accepted pairs.
    """
    if iou.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = linear_sum_assignment(-iou)
    ok = iou[rows, cols] >= min_iou
    return rows[ok].astype(np.int64), cols[ok].astype(np.int64)


class Tracker:
    """Multi-object tracker for one camera.

    Args:
        config: thresholds; defaults suit 5-30 fps traffic video.
    """

    def __init__(self, config: TrackerConfig | None = None):
        self.cfg = config or TrackerConfig()
        self.kf = self.cfg.kalman
        self._ids = itertools.count(1)
        self._ts: float | None = None
        n = 0
        self.mean = np.zeros((n, 8))
        self.cov = np.zeros((n, 8, 8))
        self.track_id = np.zeros(n, np.int64)      # 0 while tentative
        self.hits = np.zeros(n, np.int64)
        self.last_match_ts = np.zeros(n)
        self.matched_prev = np.zeros(n, bool)      # matched on the previous frame
        self.class_votes: list[dict[int, float]] = []

    def __len__(self) -> int:
        """Number of live tracks, tentative ones included."""
        return len(self.mean)

    def update(self, detections: Detections, ts: float) -> Tracks:
        """Advance to time ``ts`` (seconds) with this frame's detections.

        Returns:
            Confirmed tracks: matched ones carry the row of their detection in
            ``det_index``; coasting ones (unmatched, not yet dead) have -1.
        """
        if self._ts is not None and ts < self._ts:
            raise ValueError(f"timestamps must not go backwards: {ts} after {self._ts}")
        dt = 0.0 if self._ts is None else ts - self._ts
        self._ts = ts
        self.mean, self.cov = self.kf.predict(self.mean, self.cov, dt)

        conf = detections.confidence
        det_boxes = detections.xyxy
        high = np.flatnonzero(conf >= self.cfg.high_threshold)
        low = np.flatnonzero((conf >= self.cfg.low_threshold) & (conf < self.cfg.high_threshold))
        n_tracks = len(self.mean)
        det_of_track = np.full(n_tracks, -1, np.int64)
        pred_boxes = z_to_xyxy(self.mean)
        confirmed = self.track_id > 0

        def associate(tracks: npt.NDArray[np.int64], dets: npt.NDArray[np.int64], min_iou: float) -> None:
            if len(tracks) == 0 or len(dets) == 0:
                return
            r, c = match(iou_matrix(pred_boxes[tracks], det_boxes[dets]), min_iou)
            det_of_track[tracks[r]] = dets[c]

        # stage 1: confirmed tracks vs high-score detections
        associate(np.flatnonzero(confirmed), high, self.cfg.match_iou)
        used = np.zeros(len(detections), bool)
        used[det_of_track[det_of_track >= 0]] = True
        # stage 2: recently matched confirmed tracks vs low-score detections
        associate(np.flatnonzero(confirmed & self.matched_prev & (det_of_track < 0)), low, self.cfg.low_match_iou)
        # stage 3: tentative tracks vs remaining high-score detections
        associate(np.flatnonzero(~confirmed), high[~used[high]], self.cfg.match_iou)
        used[det_of_track[det_of_track >= 0]] = True

        matched = det_of_track >= 0
        if matched.any():
            rows = np.flatnonzero(matched)
            dets = det_of_track[rows]
            m, c = self.kf.update(self.mean[rows], self.cov[rows], xyxy_to_z(det_boxes[dets]))
            self.mean[rows], self.cov[rows] = m, c
            self.hits[rows] += 1
            self.last_match_ts[rows] = ts
            for r, d in zip(rows.tolist(), dets.tolist()):
                votes = self.class_votes[r]
                k = int(detections.class_id[d])
                votes[k] = votes.get(k, 0.0) + float(conf[d])
        newly = matched & ~confirmed & (self.hits >= self.cfg.min_hits)
        for r in np.flatnonzero(newly):
            self.track_id[r] = next(self._ids)

        # death: tentative tracks that missed, confirmed tracks too long unmatched
        alive = np.where(confirmed | newly, ts - self.last_match_ts <= self.cfg.max_age_s, matched)
        self.matched_prev = matched

        keep = np.flatnonzero(alive)
        self._select(keep)
        det_of_track = det_of_track[keep]
        # birth
        fresh = high[~used[high] & (conf[high] >= self.cfg.new_track_threshold)]
        if len(fresh):
            self._birth(detections, fresh, ts)
            det_of_track = np.concatenate([det_of_track, fresh])
        return self._report(np.flatnonzero(self.track_id > 0), det_of_track, conf)

    def _report(self, rows: npt.NDArray[np.int64], det_of_track: npt.NDArray[np.int64],
                conf: npt.NDArray[np.float32]) -> Tracks:
        dets = det_of_track[rows]
        return Tracks(
            track_id=self.track_id[rows].copy(),
            xyxy=z_to_xyxy(self.mean[rows]).astype(np.float32),
            confidence=np.where(dets >= 0, conf[np.maximum(dets, 0)], 0.0).astype(np.float32)
            if len(conf) else np.zeros(len(rows), np.float32),
            class_id=np.array([max(self.class_votes[r], key=self.class_votes[r].__getitem__) for r in rows],
                              np.int64),
            det_index=dets.astype(np.int64),
            velocity=self.mean[rows, 4:6].astype(np.float32),
        )

    def _select(self, keep: npt.NDArray[np.int64]) -> None:
        self.mean, self.cov = self.mean[keep], self.cov[keep]
        self.track_id, self.hits = self.track_id[keep], self.hits[keep]
        self.last_match_ts, self.matched_prev = self.last_match_ts[keep], self.matched_prev[keep]
        self.class_votes = [self.class_votes[i] for i in keep.tolist()]

    def _birth(self, detections: Detections, idx: npt.NDArray[np.int64], ts: float) -> None:
        m, c = self.kf.initiate(xyxy_to_z(detections.xyxy[idx]))
        n = len(idx)
        ids = np.zeros(n, np.int64)
        if self.cfg.min_hits == 1:
            ids = np.array([next(self._ids) for _ in range(n)], np.int64)
        self.mean = np.concatenate([self.mean, m])
        self.cov = np.concatenate([self.cov, c])
        self.track_id = np.concatenate([self.track_id, ids])
        self.hits = np.concatenate([self.hits, np.ones(n, np.int64)])
        self.last_match_ts = np.concatenate([self.last_match_ts, np.full(n, ts)])
        self.matched_prev = np.concatenate([self.matched_prev, np.ones(n, bool)])
        self.class_votes += [{int(detections.class_id[i]): float(detections.confidence[i])} for i in idx]
