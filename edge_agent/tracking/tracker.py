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

    The penalty is only a weight: the assignment maximises the total, so it
    still gives a coasting track the detection of a track seen in the previous
    frame when that lets the seen track take a worse, second detection. When a
    truck stood behind the box of a car it hid, a coasting track on that box
    took the truck's box, and the truck's track a box on its cab, whose bottom
    edge lay on the other side of a counting line: a crossing where nothing
    moved. So a detection that a track seen in the previous frame overlaps by
    at least ``keep_iou``, more than any other track seen then does, and that
    is that track's best, is not given to a coasting track that overlaps it
    less (before the penalty). Between tracks seen in the previous frame, and
    where a coasting track fits better, the assignment decides as before
    (blocking coasting tracks that fit better too, or deciding between seen
    tracks the same way, cost the benchmark's hard TUD-Campus two id switches).

Class as a tie-break (step 2 only; with a single class nothing changes)
    When confirmed tracks compete for a high-score detection and one of them
    has the detection's class, a track of another class loses
    ``class_margin`` of its score for it: it wins the detection only by
    overlapping it by that much more IoU. A track's class here is the class of
    its recent detections (votes fading with ``class_memory_s``) and counts
    only when at least ``class_share`` of them agree. An uncontested detection
    is matched as before, whatever its class, so a track keeps following an
    object that the detector calls by another name for a few frames.
    Why: when a truck passes behind a bus, the detector gives for a few frames
    one box over both, labelled bus. The truck's track, whose predicted box fits
    it better, took it, its velocity turned towards the bus, and when the two
    were seen apart again it took the bus's detection and left the bus's track
    with the truck: an id swap, four line crossings of a synthetic clip counted
    with the wrong class. A car passing in front of a slow truck did the same.
    A penalty on every class mismatch, contested or not, makes a track lose its
    object at the first misclassified box (half a truck seen as a car); the
    class of the track's whole life would keep a bus's class on the truck that
    its track moves onto when the bus drives off in front of it, and then hand
    that truck to the next truck that passes.

What is reported
    Every confirmed track matched in this frame, with the row of its
    detection in ``det_index``, and every confirmed track unmatched for at
    most ``report_misses`` consecutive frames, at its predicted box, with
    ``det_index == -1`` and confidence 0: a single missed detection is far
    more often a detector miss than the object leaving. A track unmatched for
    longer is kept, unreported, until ``max_age_s``, so that an object found
    again keeps its id (ByteTrack's "lost" tracks).

    When :meth:`Tracker.update` is given the ``frame_size``, a coasting track
    whose predicted box has less than ``coast_min_inside`` (default three
    quarters) of its area inside the image is not reported either: an object
    unmatched while cut by the image border has most likely walked out of the
    view, not been missed by the detector, and its prediction would be a box
    where nothing is. (Half was not enough on the benchmark's clean TUD-Campus:
    people leaving with ground-truth boxes 50-55 % inside were still reported
    for one frame.) The track itself is kept, unreported, until
    ``max_age_s`` like any lost track, so an object that steps back in keeps
    its id. Matched tracks are always reported, wherever their box is.

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

from edge_agent.tracking.kalman import (KalmanBoxModel, from_planar, predict_planar, to_planar, update_planar,
                                        xyxy_to_z)
from edge_agent.types import Detections, Tracks

IntArray = npt.NDArray[np.int64]
_Z_TO_XYXY = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]])  # cx cy w h -> xyxy
BoolArray = npt.NDArray[np.bool_]
_ZERO32 = np.zeros(1, np.float32)
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
        coast_min_inside: a coasting track is reported only while at least
            this fraction of its predicted box's area is inside the image
            (applies when ``update`` gets ``frame_size``; 0 disables it).
        birth_max_iou: a detection that overlaps a detection matched to a
            track by more IoU than this does not start a track (1 disables it).
        class_margin: score taken off a track for a high-score detection of
            another class that a track of the detection's class also overlaps
            (0 disables the class tie-break).
        class_share: share of a track's recent class votes that its top class
            needs for the track's class to count in the tie-break.
        class_memory_s: time constant in seconds of the fading of recent class
            votes.
        keep_iou: a detection that a track matched in the previous frame
            overlaps by at least this IoU, more than any other such track, and
            that is its best, is not matched to a coasting track overlapping it
            less (1 disables it).
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
    coast_min_inside: float = 0.75
    birth_max_iou: float = 0.6
    class_margin: float = 0.25
    class_share: float = 0.7
    class_memory_s: float = 1.0
    keep_iou: float = 0.5
    kalman: KalmanBoxModel = field(default_factory=KalmanBoxModel)

    def __post_init__(self) -> None:
        for name in ("high_threshold", "low_threshold", "new_track_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("match_iou", "low_match_iou", "keep_iou"):
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
        if not 0.0 <= self.coast_min_inside <= 1.0:
            raise ValueError(f"coast_min_inside must be in [0, 1], got {self.coast_min_inside}")
        if not 0.0 <= self.class_margin <= 1.0:
            raise ValueError(f"class_margin must be in [0, 1], got {self.class_margin}")
        if not 0.5 <= self.class_share <= 1.0:
            raise ValueError(f"class_share must be in [0.5, 1], got {self.class_share}")
        if self.class_memory_s <= 0:
            raise ValueError(f"class_memory_s must be > 0, got {self.class_memory_s}")


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> Array:
    """(n, m) IoU of (n, 4) and (m, 4) xyxy boxes."""
    return _iou(np.asarray(a, np.float64), np.asarray(b, np.float64))


def _iou(a: Array, b: Array) -> Array:
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh -= np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    size = a[:, 2:] - a[:, :2]
    area_a = size[:, 0] * size[:, 1]
    size = b[:, 2:] - b[:, :2]
    union = area_a[:, None] + size[:, 0] * size[:, 1]
    union -= inter
    np.maximum(union, 1e-9, out=union)
    inter /= union
    return inter  # type: ignore[no-any-return]


def match(score: Array) -> tuple[IntArray, IntArray]:
    """Optimal one-to-one assignment maximising the total of positive scores.

    Pairs with a score <= 0 are never returned. When every row's best
    positive column is a different column, giving each row its best is
    optimal and the solver is skipped (the common case: objects far apart
    compared with their motion between frames).

    Returns:
        (rows, cols) of the accepted pairs.
    """
    n, m = score.shape
    cols = score.argmax(axis=1)
    rows = (score.take(cols + np.arange(0, n * m, m)) > 0).nonzero()[0]  # rows with a positive best
    if len(rows) < n:
        cols = cols.take(rows)
    if len(rows) < 2 or len(set(cols.tolist())) == len(rows):
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
        self._dt = -1.0                            # last elapsed time and its transition (cached)
        self._transition: tuple[Array, Array, Array] | None = None
        self._m = np.zeros((2, 0, 4))              # Kalman state per track, planar (see kalman.py)
        self._c = np.zeros((3, 0, 4))              # its covariance, planar
        self.track_id = np.zeros(0, np.int64)      # 0 while tentative
        self.hits = np.zeros(0, np.int64)          # matches so far
        self.misses = np.zeros(0, np.int64)        # consecutive unmatched frames
        self.last_match_ts = np.zeros(0)
        self.votes = np.zeros((0, 1))              # (n, classes) confidence summed per class
        self.recent = np.zeros((0, 1))             # the same, fading with time constant class_memory_s
        self._frame_size: tuple[float, float] | None = None  # (width, height) of this update's image

    def __len__(self) -> int:
        """Number of live tracks, tentative and unreported ones included."""
        return len(self.track_id)

    @property
    def mean(self) -> Array:
        """(n, 8) Kalman means (a copy; see kalman.py)."""
        return from_planar(self._m, self._c)[0]

    @property
    def cov(self) -> Array:
        """(n, 3, 4) block covariances (a copy; see kalman.py)."""
        return from_planar(self._m, self._c)[1]

    def update(self, detections: Detections, ts: float, frame_size: tuple[int, int] | None = None) -> Tracks:
        """Advance to time ``ts`` (seconds) with this frame's detections.

        Args:
            detections: this frame's detections.
            ts: the frame's time in seconds.
            frame_size: ``(width, height)`` of the image in pixels, if known:
                a coasting track whose predicted box is mostly outside it is
                not reported (see ``coast_min_inside``).

        Returns:
            Confirmed tracks matched in this frame (``det_index`` is the row of
            their detection) and confirmed tracks unmatched for at most
            ``report_misses`` frames (``det_index == -1``, predicted box,
            confidence 0) whose predicted box is mostly inside ``frame_size``.
        """
        # Written for numpy's per-call overhead, which dominates at tens of tracks: cheap calls
        # (argmax, nonzero, count_nonzero, take, putmask) instead of reductions, boolean-mask
        # indexing and fancy assignment, and no work for stages that have nothing to do.
        cfg = self.cfg
        last = self._ts
        n = len(self.track_id)
        if last is not None:
            if ts < last:
                raise ValueError(f"timestamps must not go backwards: {ts} after {last}")
            dt = ts - last
            if n and dt > 0:
                if dt != self._dt:
                    self._dt, self._transition = dt, self.kf.transition(dt)
                self._m, self._c = predict_planar(self._m, self._c, self._transition)  # type: ignore[arg-type]
                if self.recent.shape[1] > 1:
                    self.recent *= np.exp(-dt / cfg.class_memory_s)
        self._ts = ts
        self._frame_size = frame_size

        conf = detections.confidence
        m = len(conf)
        free = np.empty(m, bool)
        free.fill(True)
        if not n:
            return self._birth_and_report(detections, free, np.zeros(0, np.int64), last is None)
        det_of_track = np.empty(n, np.int64)
        det_of_track.fill(-1)
        tid = self.track_id
        confirmed = tid > 0
        all_confirmed = np.count_nonzero(confirmed) == n
        k = 0
        if m:
            det_boxes = detections.xyxy.astype(np.float64)
            score = _iou(self._m[0] @ _Z_TO_XYXY, det_boxes)
            high = conf >= cfg.high_threshold
            ok = score >= cfg.match_iou
            ok &= high
            low = conf >= cfg.low_threshold
            low ^= high  # high implies low (low_threshold <= high_threshold): low and not high
            ok_low = score >= cfg.low_match_iou if np.count_nonzero(low) else None
            if cfg.miss_penalty and np.count_nonzero(self.misses):
                score /= (1.0 + cfg.miss_penalty * self.misses)[:, None]

            # stage 1: confirmed tracks <-> high-score detections
            s1 = np.where(ok if all_confirmed else ok & confirmed[:, None], score, 0.0)
            if cfg.class_margin > 0 and self.recent.shape[1] > 1:
                s1 = self._class_tiebreak(s1, detections.class_id)
            if cfg.keep_iou < 1.0 and np.count_nonzero(self.misses):
                s1 = self._keep(s1)
            r, c = match(s1)
            if len(r):
                det_of_track[r] = c
                free[c] = False
            if ok_low is not None:  # stage 2: confirmed tracks still free <-> low-score detections
                rows = det_of_track < 0
                rows &= confirmed
                if np.count_nonzero(rows):
                    ok_low &= low
                    ok_low &= rows[:, None]
                    r, c = match(np.where(ok_low, score, 0.0))
                    if len(r):
                        det_of_track[r] = c
                        free[c] = False
            if not all_confirmed:  # stage 3: tentative tracks <-> remaining high-score detections
                ok &= ~confirmed[:, None]
                ok &= free
                r, c = match(np.where(ok, score, 0.0))
                if len(r):
                    det_of_track[r] = c
                    free[c] = False
            matched = det_of_track >= 0
            k = np.count_nonzero(matched)
        if k:
            # Kalman update of every row (a missing detection reads as the last one), kept where matched
            mean, cov = update_planar(self._m, self._c, xyxy_to_z(det_boxes.take(det_of_track, axis=0)),
                                      self.kf.meas_std)
            if k == n:
                self._m, self._c = mean, cov
            else:
                self._m = np.where(matched[:, None], mean, self._m)
                self._c = np.where(matched[:, None], cov, self._c)
            self.hits += matched
            np.putmask(self.last_match_ts, matched, ts)
            track_conf = np.concatenate((conf, _ZERO32)).take(det_of_track)  # 0 where unmatched
            self._vote(det_of_track, detections.class_id, track_conf)
            if not all_confirmed:
                newly = ((tid == 0) & (self.hits >= cfg.min_hits)).nonzero()[0]
                if len(newly):
                    tid[newly] = self._next_ids(len(newly))
        else:
            track_conf = np.zeros(n, np.float32)
        misses = self.misses
        misses += 1
        if k:
            np.putmask(misses, matched, 0)
        if k < n:
            # death: tentative tracks that missed, confirmed tracks unmatched for too long
            alive = ts - self.last_match_ts <= cfg.max_age_s
            alive &= confirmed
            if k:
                alive |= matched
            if np.count_nonzero(alive) < n:
                keep = alive.nonzero()[0]
                self._select(keep)
                det_of_track, track_conf = det_of_track.take(keep), track_conf.take(keep)
        return self._birth_and_report(detections, free, det_of_track, last is None, track_conf)

    def _birth_and_report(self, detections: Detections, free: BoolArray, det_of_track: IntArray,
                          first: bool, track_conf: npt.NDArray[np.float32] | None = None) -> Tracks:
        cfg = self.cfg
        conf = detections.confidence
        fresh = free
        fresh &= conf >= max(cfg.high_threshold, cfg.new_track_threshold)
        fresh_idx = fresh.nonzero()[0]
        matched = det_of_track[det_of_track >= 0]
        if len(fresh_idx) and len(matched) and cfg.birth_max_iou < 1.0:
            # a second box on an object that already has a track (a duplicate the per-class NMS let
            # through, or another class on the same object) does not start a track of its own
            boxes = detections.xyxy.astype(np.float64)
            overlap = _iou(boxes.take(fresh_idx, axis=0), boxes.take(matched, axis=0)).max(axis=1)
            fresh_idx = fresh_idx[overlap <= cfg.birth_max_iou]
        if len(fresh_idx):
            self._birth(detections, fresh_idx, self._ts, confirm=first or cfg.min_hits == 1)  # type: ignore[arg-type]
            det_of_track = np.concatenate((det_of_track, fresh_idx))
            born_conf = conf.take(fresh_idx)
            track_conf = born_conf if track_conf is None else np.concatenate((track_conf, born_conf))
        tid = self.track_id
        show = tid > 0
        misses = self.misses
        show &= misses <= cfg.report_misses
        if self._frame_size is not None and cfg.coast_min_inside > 0 and cfg.report_misses:
            coast = misses > 0
            coast &= show
            if np.count_nonzero(coast):
                show &= ~coast | (self._inside_fraction() >= cfg.coast_min_inside)
        rows = show.nonzero()[0]
        k = len(rows)
        if not k:
            return Tracks.empty()
        pos, vel, votes = self._m[0], self._m[1], self.votes
        if k == len(tid):
            tid = tid.copy()
        else:
            tid, det_of_track = tid.take(rows), det_of_track.take(rows)
            pos, vel, votes, track_conf = (pos.take(rows, axis=0), vel.take(rows, axis=0),
                                           votes.take(rows, axis=0), track_conf.take(rows))  # type: ignore[union-attr]
        return Tracks(
            track_id=tid,
            xyxy=(pos @ _Z_TO_XYXY).astype(np.float32),
            confidence=track_conf.astype(np.float32, copy=False),  # type: ignore[union-attr]
            class_id=np.zeros(k, np.int64) if votes.shape[1] == 1 else votes.argmax(axis=1),
            det_index=det_of_track,
            velocity=vel[:, :2].astype(np.float32),
        )

    def _class_tiebreak(self, score: Array, det_class: IntArray) -> Array:
        """Scores of step 2 (confirmed tracks <-> high-score detections) less ``class_margin`` where a
        track of another class competes for a detection with a track of its class (module docstring)."""
        recent = self.recent
        cls = recent.argmax(axis=1)
        sure = recent.max(axis=1) >= self.cfg.class_share * recent.sum(axis=1)
        sure &= self.track_id > 0
        sure &= recent.max(axis=1) > 0
        cand = score > 0
        cand &= sure[:, None]
        same = cls[:, None] == det_class[None, :]
        backed = (cand & same).any(axis=0)  # detections a track of their own class could take
        other = cand & ~same
        other &= backed
        if not np.count_nonzero(other):
            return score
        # kept above 0: a track that no one else wants in the end still gets the detection
        return np.where(other, np.maximum(score - self.cfg.class_margin, 1e-3), score)

    def _keep(self, score: Array) -> Array:
        """Scores of step 2 with coasting tracks cut off from the detections that tracks seen in the previous
        frame hold clearly (``keep_iou``, module docstring)."""
        misses = self.misses
        coasting = misses > 0
        live = ~coasting
        rows = live.nonzero()[0]
        if not len(rows) or not np.count_nonzero(coasting):
            return score
        live_score = np.where(live[:, None], score, 0.0)
        best_det = live_score[rows].argmax(axis=1)
        best = live_score[rows, best_det]
        sure = best >= self.cfg.keep_iou
        sure &= live_score[:, best_det].argmax(axis=0) == rows
        if not np.count_nonzero(sure):
            return score
        c, best = best_det[sure], best[sure]
        raw = score[:, c] * (1.0 + self.cfg.miss_penalty * misses)[:, None]
        block = coasting[:, None] & (raw < best[None, :])
        if not np.count_nonzero(block):
            return score
        score = score.copy()
        score[:, c] = np.where(block, 0.0, score[:, c])
        return score

    def _inside_fraction(self) -> Array:
        """(n,) fraction of each track's predicted box area inside the frame (0 for an empty box)."""
        w, h = self._frame_size  # type: ignore[misc]
        box = self._m[0] @ _Z_TO_XYXY
        size = box[:, 2:] - box[:, :2]
        area = size[:, 0] * size[:, 1]
        np.clip(box, 0.0, (w, h, w, h), out=box)
        size = box[:, 2:] - box[:, :2]
        inside = size[:, 0] * size[:, 1]
        np.maximum(area, 1e-9, out=area)
        inside /= area
        return inside  # type: ignore[no-any-return]

    def _next_ids(self, k: int) -> IntArray:
        return np.fromiter(itertools.islice(self._ids, k), np.int64, k)

    def _vote(self, det_of_track: IntArray, class_id: IntArray, track_conf: npt.NDArray[np.float32]) -> None:
        """Add each track's detection confidence (0 if unmatched) to its class's votes."""
        votes = self.votes
        if votes.shape[1] == 1 and not np.count_nonzero(class_id):  # the usual single class
            votes[:, 0] += track_conf
            return
        cls = class_id.take(det_of_track, mode="wrap")  # unmatched rows (-1) add 0 to some class
        self._grow_classes(int(cls.max()) + 1)
        rows = np.arange(len(cls))
        self.votes[rows, cls] += track_conf
        self.recent[rows, cls] += track_conf

    def _grow_classes(self, k: int) -> None:
        """Widen the vote arrays to at least ``k`` classes."""
        if k > self.votes.shape[1]:
            self.votes, self.recent = (np.pad(v, ((0, 0), (0, k - v.shape[1]))) for v in (self.votes, self.recent))

    def _select(self, keep: IntArray) -> None:
        self._m, self._c = self._m.take(keep, axis=1), self._c.take(keep, axis=1)
        self.track_id, self.hits, self.misses = self.track_id.take(keep), self.hits.take(keep), self.misses.take(keep)
        self.last_match_ts, self.votes = self.last_match_ts.take(keep), self.votes.take(keep, axis=0)
        self.recent = self.recent.take(keep, axis=0)

    def _birth(self, detections: Detections, idx: IntArray, ts: float, confirm: bool) -> None:
        """Append tracks for detections ``idx`` (one concatenate per array, however many are born)."""
        mean, cov = self.kf.initiate(xyxy_to_z(detections.xyxy.take(idx, axis=0)))
        k = len(idx)
        mean, cov = to_planar(mean, cov)
        self._m = np.concatenate((self._m, mean), axis=1)
        self._c = np.concatenate((self._c, cov), axis=1)
        ids = self._next_ids(k) if confirm else np.zeros(k, np.int64)
        self.track_id = np.concatenate((self.track_id, ids))
        self.hits = np.concatenate((self.hits, np.ones(k, np.int64)))
        self.misses = np.concatenate((self.misses, np.zeros(k, np.int64)))
        self.last_match_ts = np.concatenate((self.last_match_ts, np.full(k, ts)))
        cls = detections.class_id.take(idx)
        self._grow_classes(int(cls.max()) + 1)
        votes = np.zeros((k, self.votes.shape[1]))
        votes[np.arange(k), cls] = detections.confidence.take(idx)
        self.votes = np.concatenate((self.votes, votes))
        self.recent = np.concatenate((self.recent, votes))
