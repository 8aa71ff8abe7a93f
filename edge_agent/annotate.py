"""Annotated video for people setting up a camera: boxes, ids, trails, lines with running counts.

Written on the box only (``edge-agent run --annotate out.mp4``); frames are never published.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.counting import LineCounter
from edge_agent.types import CrossingEvent, Direction, Frame, Tracks

TRAIL = 20
IN_COLOUR, OUT_COLOUR, LINE_COLOUR = (60, 200, 60), (60, 120, 240), (0, 220, 255)


def _colour(track_id: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(track_id)
    b, g, r = (int(v) for v in rng.integers(60, 256, 3))
    return b, g, r


class Annotator:
    """Writes one camera's annotated frames to a video file.

    Args:
        path: output video (.mp4 or .avi).
        fps: frame rate written into the file.
        names: class names of the detector.
        counters: the camera's line counters (drawn with their in-direction arrows).
    """

    def __init__(self, path: str | Path, fps: float, names: Sequence[str], counters: Sequence[LineCounter]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.names = list(names)
        self.counters = list(counters)
        self.counts = {c.line_id: {Direction.IN: 0, Direction.OUT: 0} for c in self.counters}
        self.trails: dict[int, deque[tuple[int, int]]] = {}
        self.writer: cv2.VideoWriter | None = None

    def _open(self, shape: tuple[int, ...]) -> cv2.VideoWriter:
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (shape[1], shape[0]))
        if not writer.isOpened():
            raise OSError(f"cannot write video {self.path}")
        return writer

    def add(self, frame: Frame, tracks: Tracks, events: Sequence[CrossingEvent]) -> None:
        img: npt.NDArray[np.uint8] = frame.image.copy()
        for e in events:
            self.counts[e.line_id][e.direction] += 1
        for c in self.counters:
            p1 = tuple(int(v) for v in c.p1)
            p2 = tuple(int(v) for v in c.p2)
            cv2.line(img, p1, p2, LINE_COLOUR, 2, cv2.LINE_AA)
            mid = (c.p1 + c.p2) / 2
            d = c.p2 - c.p1
            normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6) * c.in_sign * 25
            cv2.arrowedLine(img, tuple(int(v) for v in mid), tuple(int(v) for v in mid + normal), IN_COLOUR, 2,
                            cv2.LINE_AA, tipLength=0.35)
            n = self.counts[c.line_id]
            label = f"{c.line_id}: in {n[Direction.IN]} out {n[Direction.OUT]}"
            cv2.putText(img, label, (p1[0], max(12, p1[1] - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3,
                        cv2.LINE_AA)
            cv2.putText(img, label, (p1[0], max(12, p1[1] - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, LINE_COLOUR, 1,
                        cv2.LINE_AA)
        live = set(tracks.track_id.tolist())
        for tid in [t for t in self.trails if t not in live]:
            del self.trails[tid]
        for tid, box, cls, det in zip(tracks.track_id.tolist(), tracks.xyxy, tracks.class_id.tolist(),
                                      tracks.det_index.tolist()):
            x1, y1, x2, y2 = (int(v) for v in box)
            col = _colour(tid)
            cv2.rectangle(img, (x1, y1), (x2, y2), col, 2 if det >= 0 else 1, cv2.LINE_AA)
            name = self.names[cls] if 0 <= cls < len(self.names) else str(cls)
            cv2.putText(img, f"{tid} {name}", (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1,
                        cv2.LINE_AA)
            trail = self.trails.setdefault(tid, deque(maxlen=TRAIL))
            trail.append(((x1 + x2) // 2, y2))
            if len(trail) > 1:
                cv2.polylines(img, [np.array(trail, np.int32)], False, col, 1, cv2.LINE_AA)
        if self.writer is None:
            self.writer = self._open(img.shape)
        self.writer.write(img)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
