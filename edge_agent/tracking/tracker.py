"""Detections -> Tracks: ByteTrack-style association on a batched Kalman filter.

Per frame (call :meth:`Tracker.update` for every processed frame, also when
there are no detections, so that tracks age):

1. Predict every track to the frame's timestamp (real elapsed time, so
   frames skipped by an fps cap or an overloaded box do not break tracks;
   the process noise grows with the elapsed time).
2. Confirmed tracks <-> high-score detections (optimal assignment).
3. Confirmed tracks still free <-> low-score detections (ByteTrack's second
   stage: an occluded or blurred object keeps its track through a
   low-score detection).
4. Tentative tracks <-> remaining high-score detections.
5. Remaining detections at or above ``new_track_threshold`` start tentative
   tracks. A tentative track that misses a frame is dropped; one matched on
   ``min_hits`` consecutive processed frames is confirmed and gets the next
   id. On the very first frame there is no history to wait for, so its new
   tracks are confirmed at once (ByteTrack's first-frame rule).
6. Confirmed tracks unmatched for longer than ``max_age_s`` are dropped.

Association score
    A pair needs an IoU of at least ``match_iou`` (``low_match_iou`` for a
    low-score detection) between the predicted box and the detection. Among
    those, the assignment maximises the summed score ``IoU / (1 +
    miss_penalty * misses)``, ``misses`` being the frames the track has gone
    unmatched. A track seen in the previous frame therefore wins a contested
    detection over one that has been coasting on its prediction, a soft form
    of DeepSORT's matching cascade: it stops a track lost behind an obstacle
    from taking over the detection of a neighbour that its stale prediction
    happens to overlap, yet still lets it pick up an uncontested detection.

What is reported
    Every confirmed track matched in this frame, with the row of its
    detection in ``det_index``, and every confirmed track unmatched for at
    most ``report_misses`` consecutive frames, at its predicted box, with
    ``det_index == -1`` and confidence 0: a single missed detection is far
    more often a detector miss than the object leaving. A track unmatched for
    longer is kept, unreported, until ``max_age_s``, so that an object found
    again keeps its id (ByteTrack's "lost" tracks).

    For line counting (``edge_agent.counting``) this is safe: the counter
    moves only on rows with ``det_index >= 0`` and tests the path from the
    last position it saw, so a coasting row never creates or moves a count,
    and an id is never given to a second object, so nothing is counted twice
    because of the tracker. The counter forgets an id as soon as it is not
    reported, so after an occlusion longer than ``report_misses`` frames it
    restarts the id from where it is seen again: a line crossed *entirely
    while hidden* that long is not counted. Reporting lost tracks for their
    whole ``max_age_s`` would keep the counter's memory but put a box where
    nothing is seen for up to ``max_age_s`` after every object leaves the
    view, which a consumer of the boxes (a display, a zone dwell time, the
    MOT metrics) would take as a real object.

    ``scripts/bench_tracking.py`` scores exactly this output.

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

IntArray = npt.NDArray[np.int64]
_STATE_TO_BOX_VEL = np.zeros((6, 6))  # state [cx cy w h vcx vcy] -> [x1 y1 x2 y2 vcx vcy]
_STATE_TO_BOX_VEL[:4, :4] = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]])
_STATE_TO_BOX_VEL[4:, 4:] = np.eye(2)
BoolArray = npt.NDArray[np.bool_]
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker thresholds (see the module docstring for where each applies).

    Attributes:
        high_threshold: detections at or above are matched in the first stage.
        low_threshold: detections below are ignored; between the two they can
            only continue a confirmed track (second stage).
        new_track_threshold: minimum score to start a track.
        match_iou: minimum IoU with the predicted box to match a high-score
            detection.
        low_match_iou: minimum IoU to match a low-score detection.
        min_hits: matches on consecutive processed frames before a track is
            confirmed and reported.
        max_age_s: seconds without a match before a confirmed track is dropped.
        report_misses: consecutive unmatched frames during which a confirmed
            track is still reported, at its prediction (``det_index == -1``).
        miss_penalty: association score divisor per unmatched frame, so that
            recently seen tracks win contested detections.
        kalman: motion and noise model.
    """

    high_threshold: float = 0.5
    low_threshold: float = 0.1
    new_track_threshold: float = 0.5
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    min_hits: int = 2
    max_age_s: float = 1.0
    report_misses: int = 1
    miss_penalty: float = 0.25
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
        if self.report_misses < 0:
            raise ValueError(f"report_misses must be >= 0, got {self.report_misses}")
        if self.miss_penalty < 0:
            raise ValueError(f"miss_penalty must be >= 0, got {self.miss_penalty}")


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> Array:
    """(n, m) IoU of (n, 4) and (m, 4) xyxy boxes."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b - inter, 1e-9)  # type: ignore[no-any-return]


def match(score: Array) -> tuple[IntArray, IntArray]:
    """Optimal one-to-one assignment maximising the total of positive scores.

    Pairs with a score <= 0 are never returned. When every row's best
    positive column is a different column, giving each row its best is
    optimal and the solver is skipped (the common case: objects far apart
    compared with their motion between frames).

    Returns:
        (rows, cols) of the accepted pairs.
    """
    rows = (score.max(axis=1) > 0).nonzero()[0]
    cols = score.argmax(axis=1)[rows]
    if len(cols) < 2 or len(set(cols.tolist())) == len(cols):
        return rows, cols
    r, c = linear_sum_assignment(score, maximize=True)
    ok = score[r, c] > 0
    return r[ok].astype(np.int64), c[ok].astype(np.int64)


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
        self.mean = np.zeros((0, 8))               # Kalman state per track
        self.cov = np.zeros((0, 3, 4))             # its covariance (see kalman.py)
        self.track_id = np.zeros(0, np.int64)      # 0 while tentative
        self.hits = np.zeros(0, np.int64)          # matches so far
        self.misses = np.zeros(0, np.int64)        # consecutive unmatched frames
        self.last_match_ts = np.zeros(0)
        self.votes = np.zeros((0, 1))              # (n, classes) confidence summed per class

    def __len__(self) -> int:
        """Number of live tracks, tentative and unreported ones included."""
        return len(self.mean)

    def update(self, detections: Detections, ts: float) -> Tracks:
        """Advance to time ``ts`` (seconds) with this frame's detections.

        Returns:
            Confirmed tracks matched in this frame (``det_index`` is the row of
            their detection) and confirmed tracks unmatched for at most
            ``report_misses`` frames (``det_index == -1``, predicted box,
            confidence 0).
        """
        cfg = self.cfg
        if self._ts is not None and ts < self._ts:
            raise ValueError(f"timestamps must not go backwards: {ts} after {self._ts}")
        first = self._ts is None
        if self._ts is not None:
            self.mean, self.cov = self.kf.predict(self.mean, self.cov, ts - self._ts)
        self._ts = ts

        conf = detections.confidence
        n, m = len(self.mean), len(conf)
        det_of_track = np.full(n, -1, np.int64)
        high = conf >= cfg.high_threshold
        free = np.ones(m, bool)
        if n and m:
            det_boxes = detections.xyxy.astype(np.float64)
            score = iou_matrix(z_to_xyxy(self.mean), det_boxes)
            ok_high = score >= cfg.match_iou
            low = ~high & (conf >= cfg.low_threshold)
            ok_low = score >= cfg.low_match_iou if low.any() else None
            if cfg.miss_penalty and self.misses.any():
                score /= (1.0 + cfg.miss_penalty * self.misses)[:, None]
            confirmed = self.track_id > 0

            def associate(tracks: BoolArray, dets: BoolArray, ok: npt.NDArray[np.bool_]) -> None:
                if tracks.any() and dets.any():
                    r, c = match(np.where(ok & tracks[:, None] & dets, score, 0.0))
                    det_of_track[r] = c
                    free[c] = False

            associate(confirmed, high, ok_high)                          # stage 1
            if ok_low is not None:
                associate(confirmed & (det_of_track < 0), low, ok_low)    # stage 2
            if not confirmed.all():
                associate(~confirmed, high & free, ok_high)              # stage 3
            rows = (det_of_track >= 0).nonzero()[0]
            if len(rows) == n:  # every track matched: no gather/scatter
                dets = det_of_track
                self.mean, self.cov = self.kf.update(self.mean, self.cov, xyxy_to_z(det_boxes[dets]))
            elif len(rows):
                dets = det_of_track[rows]
                self.mean[rows], self.cov[rows] = self.kf.update(self.mean[rows], self.cov[rows],
                                                                 xyxy_to_z(det_boxes[dets]))
            if len(rows):
                self.hits[rows] += 1
                self.last_match_ts[rows] = ts
                self._vote(rows, detections.class_id[dets], conf[dets])
                newly = rows[(self.track_id[rows] == 0) & (self.hits[rows] >= cfg.min_hits)]
                if len(newly):
                    self.track_id[newly] = self._next_ids(len(newly))

        if n:
            matched = det_of_track >= 0
            self.misses += 1
            self.misses[matched] = 0
            # death: tentative tracks that missed, confirmed tracks unmatched for too long
            alive = np.where(self.track_id > 0, ts - self.last_match_ts <= cfg.max_age_s, matched)
            if not alive.all():
                self._select(alive)
                det_of_track = det_of_track[alive]
        fresh = (free & (conf >= max(cfg.high_threshold, cfg.new_track_threshold))).nonzero()[0]
        if len(fresh):
            self._birth(detections, fresh, ts, confirm=first or cfg.min_hits == 1)
            det_of_track = np.concatenate([det_of_track, fresh])
        return self._report(det_of_track, conf)

    def _next_ids(self, k: int) -> IntArray:
        return np.fromiter(itertools.islice(self._ids, k), np.int64, k)

    def _vote(self, rows: IntArray, cls: IntArray, score: npt.NDArray[np.float32]) -> None:
        top = int(cls.max())
        if top >= self.votes.shape[1]:
            grown = np.zeros((len(self.votes), top + 1))
            grown[:, :self.votes.shape[1]] = self.votes
            self.votes = grown
        self.votes[rows, cls] += score  # rows are distinct

    def _report(self, det_of_track: IntArray, conf: npt.NDArray[np.float32]) -> Tracks:
        rows = ((self.track_id > 0) & (self.misses <= self.cfg.report_misses)).nonzero()[0]
        if not len(rows):
            return Tracks.empty()
        dets = det_of_track[rows]
        seen = dets >= 0
        score = np.zeros(len(rows), np.float32)
        score[seen] = conf[dets[seen]]
        box_vel = (self.mean[rows, :6] @ _STATE_TO_BOX_VEL).astype(np.float32)  # x1 y1 x2 y2 vx vy
        return Tracks(
            track_id=self.track_id[rows],
            xyxy=box_vel[:, :4],
            confidence=score,
            class_id=self.votes[rows].argmax(axis=1),
            det_index=dets,
            velocity=box_vel[:, 4:],
        )

    def _select(self, keep: BoolArray) -> None:
        self.mean, self.cov = self.mean[keep], self.cov[keep]
        self.track_id, self.hits, self.misses = self.track_id[keep], self.hits[keep], self.misses[keep]
        self.last_match_ts, self.votes = self.last_match_ts[keep], self.votes[keep]

    def _birth(self, detections: Detections, idx: IntArray, ts: float, confirm: bool) -> None:
        """Append tracks for detections ``idx`` (one concatenate per array, however many are born)."""
        mean, cov = self.kf.initiate(xyxy_to_z(detections.xyxy[idx]))
        k = len(idx)
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        ids = self._next_ids(k) if confirm else np.zeros(k, np.int64)
        self.track_id = np.concatenate([self.track_id, ids])
        self.hits = np.concatenate([self.hits, np.ones(k, np.int64)])
        self.misses = np.concatenate([self.misses, np.zeros(k, np.int64)])
        self.last_match_ts = np.concatenate([self.last_match_ts, np.full(k, ts)])
        self.votes = np.concatenate([self.votes, np.zeros((k, self.votes.shape[1]))])
        self._vote(np.arange(len(self.votes) - k, len(self.votes)), detections.class_id[idx],
                   detections.confidence[idx])
