"""Annotated video for people setting up a camera: the setup, boxes, ids, trails and live counts.

Written on the box only (``edge-agent run --annotate out.mp4``); frames are never published.
Each frame shows the camera's lines, zones and travel arrows (see :mod:`edge_agent.overlay`;
the ground grid only on request), every reported track as a box with its id and class and
a trail of its last seconds, and a panel with the running in/out totals of every line, the
current occupancy of every zone, and any extra lines the pipeline passes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.config import CameraConfig
from edge_agent.geometry import points_in_polygon
from edge_agent.overlay import IN_COLOUR, LINE_COLOUR, TEXT_COLOUR, SetupLayer, Style, put_text, zone_colour
from edge_agent.overlay import panel as dark_box
from edge_agent.types import Anchor, CrossingEvent, Direction, Frame, Tracks

TRAIL_S = 2.0
OUT_COLOUR = (60, 120, 240)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, fairly bright colour per track id."""
    rng = np.random.default_rng(track_id)
    b, g, r = (int(v) for v in rng.integers(60, 256, 3))
    return b, g, r


class Annotator:
    """Writes one camera's annotated frames to a video file.

    Args:
        path: output video (.mp4 is written as MPEG-4 Part 2, anything else as MJPG).
        fps: frame rate written into the file.
        names: class names of the detector.
        cam: the camera's configuration (lines, zones, calibration).
        grid: also draw the calibration's ground grid on every frame.
        trail_s: seconds of each track's path drawn behind it.
    """

    def __init__(self, path: str | Path, fps: float, names: Sequence[str], cam: CameraConfig, *,
                 grid: bool = False, trail_s: float = TRAIL_S):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps)
        self.names = list(names)
        self.cam = cam
        self.grid = grid
        self.trail_s = trail_s
        self.anchor = cam.lines[0].anchor if cam.lines else Anchor.BOTTOM_CENTER
        self.counts: dict[str, dict[Direction, int]] = {ln.id: {Direction.IN: 0, Direction.OUT: 0}
                                                        for ln in cam.lines}
        self.trails: dict[int, deque[tuple[float, float, float]]] = {}
        self.frames = 0
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.layer: SetupLayer | None = None

    def _open(self, width: int, height: int) -> cv2.VideoWriter:
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"cannot write video {self.path}")
        return writer

    def zone_occupancy(self, tracks: Tracks) -> dict[str, int]:
        """Tracks whose anchor is inside each zone now."""
        pts = tracks.anchors(self.anchor)
        return {z.id: int(points_in_polygon(pts, z.polygon).sum()) if len(pts) else 0 for z in self.cam.zones}

    def add(self, frame: Frame, tracks: Tracks, events: Sequence[CrossingEvent],
            panel: Mapping[str, str] | None = None) -> None:
        """Draw one frame and append it to the video.

        Args:
            frame: the frame as read.
            tracks: the tracks reported for it.
            events: the line crossings completed in it (they update the panel's totals).
            panel: extra panel rows, label -> text (e.g. queue lengths, speeds).
        """
        img: npt.NDArray[np.uint8] = np.ascontiguousarray(frame.image).copy()
        h, w = img.shape[:2]
        if self.size is None:
            self.size = (w, h)
            self.writer = self._open(w, h)
        if (w, h) != self.size:  # a live source that came back at another resolution
            img = cv2.resize(img, self.size)
            h, w = img.shape[:2]
            scale = np.array([self.size[0] / frame.image.shape[1], self.size[1] / frame.image.shape[0]] * 2,
                             np.float32)
            tracks = Tracks(tracks.track_id, tracks.xyxy * scale, tracks.confidence, tracks.class_id,
                            tracks.det_index, tracks.velocity)
        if self.layer is None:
            self.layer = SetupLayer(self.cam, w, h, grid=self.grid, calibration_points=False, info=False)
        st = self.layer.style
        for e in events:
            self.counts.setdefault(e.line_id, {Direction.IN: 0, Direction.OUT: 0})[e.direction] += 1
        self.layer.draw(img)
        self._tracks(img, frame.ts, tracks, st)
        self._panel(img, frame, tracks, panel, st)
        assert self.writer is not None
        self.writer.write(img)
        self.frames += 1

    def _tracks(self, img: npt.NDArray[np.uint8], ts: float, tracks: Tracks, st: Style) -> None:
        anchors = tracks.anchors(self.anchor)
        for tid, (ax, ay) in zip(tracks.track_id.tolist(), anchors.tolist()):
            self.trails.setdefault(tid, deque()).append((ts, ax, ay))
        for tid in list(self.trails):  # forget what is older than the trail, and tracks gone for that long
            trail = self.trails[tid]
            while trail and trail[0][0] < ts - self.trail_s:
                trail.popleft()
            if not trail:
                del self.trails[tid]
        for tid, box, cls, det in zip(tracks.track_id.tolist(), tracks.xyxy.tolist(), tracks.class_id.tolist(),
                                      tracks.det_index.tolist()):
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            col = track_colour(tid)
            trail = self.trails.get(tid)
            if trail is not None and len(trail) > 1:
                pts = np.round(np.array([(x, y) for _, x, y in trail])).astype(np.int32)
                cv2.polylines(img, [pts], False, col, max(1, st.thick - 1), cv2.LINE_AA)
            # a coasting track (no detection this frame) gets a thin box
            cv2.rectangle(img, (x1, y1), (x2, y2), col, st.thick if det >= 0 else 1, cv2.LINE_AA)
            name = self.names[cls] if 0 <= cls < len(self.names) else str(cls)
            put_text(img, f"{tid} {name}", (x1, y1 - st.px(4)), col, st, font=st.font * 0.8)

    def _panel(self, img: npt.NDArray[np.uint8], frame: Frame, tracks: Tracks, extra: Mapping[str, str] | None,
               st: Style) -> None:
        when = datetime.fromtimestamp(frame.ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rows: list[tuple[str, tuple[int, int, int]]] = [(f"{self.cam.id}  {when}Z  {len(tracks)} tracks",
                                                         TEXT_COLOUR)]
        for line_id, n in self.counts.items():
            rows.append((f"{line_id}: in {n[Direction.IN]}  out {n[Direction.OUT]}", LINE_COLOUR))
        for i, (zone_id, k) in enumerate(self.zone_occupancy(tracks).items()):
            c = zone_colour(i)
            rows.append((f"{zone_id}: {k} now", ((c[0] + 255) // 2, (c[1] + 255) // 2, (c[2] + 255) // 2)))
        for key, value in (extra or {}).items():
            rows.append((f"{key}: {value}", IN_COLOUR))
        fs = st.font * 0.85
        sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, fs, st.text_thick) for t, _ in rows]
        row_h = max(th + base for (_, th), base in sizes) + st.px(6)
        pad = st.px(6)
        width = max(tw for (tw, _), _ in sizes) + 2 * pad + st.px(4)
        dark_box(img, (0, 0, width, pad + row_h * len(rows) + pad))
        for i, (text, colour) in enumerate(rows):
            put_text(img, text, (pad, pad + row_h * (i + 1) - st.px(5)), colour, st, font=fs)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


__all__ = ["OUT_COLOUR", "Annotator", "track_colour"]
