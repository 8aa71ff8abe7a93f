"""Render a seeded synthetic clip of the junction with exact ground truth.

:func:`render_clip` writes, into one folder::

    clip.avi            MJPG video
    gt.txt              MOTChallenge ground truth: frame,id,left,top,width,height,1,class,visibility
                        (frame and id 1-based; class = index into truth.json "names" + 1)
    trajectories.csv    frame,id,x_m,y_m,heading_rad,speed_mps (ground plane, every frame of every track)
    crossings.csv       line_id,track_id,class,direction,frame,ts
    tracks.csv          id,class,origin,destination,turn,first_frame,last_frame,mean_speed_mps
    truth.json          all of the above in one file, plus homographies, lines, signal plan, seed
    agent.yaml          an edge-agent configuration for the clip (lines and inbound lane zones on the four approaches)

Everything is a function of the seed and the arguments: the same call gives
byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import yaml

from edge_agent.synth.background import props, render_background
from edge_agent.synth.camera import Camera, apply_homography
from edge_agent.synth.shapes import Drawn, make_shape, paint, person_pose, project_mesh
from edge_agent.synth.world import (
    ARMS,
    BOX,
    FAR_R,
    LANE_W,
    STOP_R,
    Agent,
    Simulation,
    TrafficConfig,
    arm_dir,
    inbound_point,
)

NAMES = ("person", "car", "motorcycle", "bus", "truck")
CLASS_ID = {n: i for i, n in enumerate(NAMES)}
LINE_R = BOX               # counting lines lie across each arm at the edge of the junction box
LINE_HALF = LANE_W + 0.3   # ... from curb to curb, a little over
HYSTERESIS_PX = 3.0
ZONE_STEP_M = 5.0          # a lane zone is shortened in these steps from FAR_R until it is in front of the camera ...
ZONE_MIN_M = 15.0          # ... but not below this length (the arm gets no zone then)
ZONE_MIN_W = 0.1           # "in front": depth at least 0.1 x the junction centre's (homogeneous w, H[2, 2] = 1)
SPILLBACK_VEH = 6          # a queue of this many vehicles in a lane zone raises a spill-back event
START_TIME = "2024-05-06T08:00:00Z"
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "synth-yolo11n.onnx"


def default_camera(width: int = 640, height: int = 360) -> Camera:
    """The demo camera: on a 10 m pole at the south-west corner, looking over the junction to the north-east."""
    return Camera.look_at((-13.0, -27.0, 10.0), (1.5, 2.0, 0.0), 66.0, width, height)


def random_camera(rng: np.random.Generator, width: int = 640, height: int = 360) -> Camera:
    """A plausible pole-mounted camera from any corner (for training stills)."""
    ang = float(rng.uniform(0, 2 * math.pi))
    dist = float(rng.uniform(22, 34))
    pos = (dist * math.cos(ang), dist * math.sin(ang), float(rng.uniform(7.5, 13.0)))
    target = (float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4)), 0.0)
    return Camera.look_at(pos, target, float(rng.uniform(55, 75)), width, height)


@dataclass(frozen=True)
class LineTruth:
    """A counting line across one arm, in image pixels, with its ground end points."""

    id: str
    arm: str
    p1: tuple[float, float]
    p2: tuple[float, float]
    in_side: str
    ground_p1: tuple[float, float]
    ground_p2: tuple[float, float]


@dataclass(frozen=True)
class Crossing:
    line_id: str
    track_id: int
    class_name: str
    direction: str     # "in" or "out"
    frame: int
    ts: float          # seconds from the first frame


@dataclass(frozen=True)
class TrackTruth:
    id: int
    class_name: str
    origin: str | None        # vehicles: approach arm; pedestrians: None
    destination: str | None
    turn: str | None          # through, left, right
    first_frame: int
    last_frame: int
    mean_speed_mps: float


@dataclass
class ClipTruth:
    """Ground truth of a rendered clip (see the module docstring for the files).

    Attributes:
        boxes: (n, 8) float64 rows frame (0-based), id, x1, y1, x2, y2, class index, visibility,
            for every frame where a track's box touches the image.
        trajectories: (m, 6) float64 rows frame, id, x_m, y_m, heading_rad, speed_mps, for every
            frame of every track (in view or not).

    """

    seed: int
    fps: float
    width: int
    height: int
    n_frames: int
    names: tuple[str, ...]
    ground_to_image: list[list[float]]
    image_to_ground: list[list[float]]
    lines: list[LineTruth]
    tracks: list[TrackTruth]
    crossings: list[Crossing]
    boxes: npt.NDArray[np.float64]
    trajectories: npt.NDArray[np.float64]
    signal: dict[str, float]
    out_dir: Path | None = None
    render_fps: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def line_counts(self) -> Counter[tuple[str, str, str]]:
        """(line id, direction, class) -> number of crossings."""
        return Counter((c.line_id, c.direction, c.class_name) for c in self.crossings)

    def movements(self) -> Counter[tuple[str, str, str]]:
        """(origin, destination, class) -> vehicles, for vehicles that entered and left through counted lines."""
        by_track: dict[int, dict[str, str]] = {}
        for c in self.crossings:
            by_track.setdefault(c.track_id, {})[c.direction] = c.line_id
        cls = {t.id: t.class_name for t in self.tracks}
        return Counter((d["in"], d["out"], cls[t]) for t, d in by_track.items() if "in" in d and "out" in d)


def counting_lines(cam: Camera) -> list[LineTruth]:
    """One line per arm across the carriageway at the junction box edge; "in" is towards the centre."""
    lines = []
    h = cam.ground_to_image
    for arm in ARMS:
        d = arm_dir(arm)
        n = np.array([d[1], -d[0]])
        g1, g2 = d * LINE_R - n * LINE_HALF, d * LINE_R + n * LINE_HALF
        p = apply_homography(h, np.array([g1, g2]))
        p1, p2 = p[0], p[1]
        inside = apply_homography(h, np.array([d * (LINE_R - 3)]))[0]
        side = (p2[0] - p1[0]) * (inside[1] - p1[1]) - (p2[1] - p1[1]) * (inside[0] - p1[0])
        lines.append(LineTruth(arm, arm, (round(float(p1[0]), 1), round(float(p1[1]), 1)),
                               (round(float(p2[0]), 1), round(float(p2[1]), 1)), "right" if side > 0 else "left",
                               (float(g1[0]), float(g1[1])), (float(g2[0]), float(g2[1]))))
    return lines


def _side(line: LineTruth, pt: npt.NDArray[np.float64]) -> float:
    (x1, y1), (x2, y2) = line.p1, line.p2
    return float((x2 - x1) * (pt[1] - y1) - (y2 - y1) * (pt[0] - x1)) / math.hypot(x2 - x1, y2 - y1)


def _through(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], line: LineTruth) -> bool:
    p, q = np.asarray(line.p1), np.asarray(line.p2)

    def cross(o: npt.NDArray[np.float64], u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]) -> float:
        return float((u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0]))

    return cross(p, q, a) * cross(p, q, b) <= 0 and cross(a, b, p) * cross(a, b, q) <= 0


def line_crossings(boxes: npt.NDArray[np.float64], lines: list[LineTruth], names: tuple[str, ...],
                   fps: float, hysteresis_px: float = HYSTERESIS_PX) -> list[Crossing]:
    """Crossings of the box bottom-centres of each track over each line.

    The convention is the counter's (edge_agent.counting): a side is decided
    outside a dead band of ``hysteresis_px``; a crossing is a change of side
    whose path from the last point seen on the old side passes through the
    segment; at most one crossing per track, line and direction; ``in`` is a
    move onto ``in_side``.
    """
    out = []
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))
    rows = boxes[order]
    for tid in map(int, np.unique(rows[:, 1])):
        tr = rows[rows[:, 1] == tid]
        anchors = np.column_stack([(tr[:, 2] + tr[:, 4]) / 2, tr[:, 5]])
        cls = names[int(tr[0, 6])]
        for line in lines:
            in_sign = 1 if line.in_side == "right" else -1
            state: tuple[int, npt.NDArray[np.float64]] | None = None
            done: set[str] = set()
            for k in range(len(tr)):
                dist = _side(line, anchors[k])
                side = 1 if dist > hysteresis_px else -1 if dist < -hysteresis_px else 0
                if side == 0:
                    continue
                if state is None:
                    state = (side, anchors[k])
                    continue
                if side != state[0] and _through(state[1], anchors[k], line):
                    direction = "in" if side == in_sign else "out"
                    if direction not in done:
                        done.add(direction)
                        frame = int(tr[k, 0])
                        out.append(Crossing(line.id, tid, cls, direction, frame, frame / fps))
                state = (side, anchors[k])
    out.sort(key=lambda c: (c.frame, c.line_id, c.track_id))
    return out


@dataclass
class SceneObject:
    agent: Agent | None     # None for props
    drawn: Drawn


class Scene:
    """One seeded scene: camera, background, props, traffic, lighting and sensor model.

    Iterate :meth:`frames` for (frame index, BGR image, objects drawn far to near).
    """

    def __init__(self, seed: int, fps: float = 15.0, camera: Camera | None = None,
                 traffic: TrafficConfig | None = None, warmup_s: float = 25.0, width: int = 640, height: int = 360):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.fps = fps
        self.cam = camera or default_camera(width, height)
        self.traffic = traffic or TrafficConfig()
        self.background = render_background(self.cam, self.rng)
        self.shadow_bg = (self.background.astype(np.float32) * np.float32(self.rng.uniform(0.45, 0.65))
                          ).astype(np.uint8)
        self.props = props(self.rng)
        el = math.radians(float(self.rng.uniform(30, 70)))
        az = float(self.rng.uniform(0, 2 * math.pi))
        self.sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        self.shadow_dir = -self.sun[:2] / math.tan(el) if self.rng.random() < 0.8 else None   # overcast: no shadows
        self.gain = float(self.rng.uniform(0.75, 1.15))
        self.tint = self.rng.uniform(0.9, 1.1, 3)
        self.flicker = (float(self.rng.uniform(0.05, 0.15)), float(self.rng.uniform(8, 25)),
                        float(self.rng.uniform(0, 2 * math.pi)))
        self.noise_sigma = float(self.rng.uniform(1.5, 4.5))
        self.noise_bank = [self.rng.normal(0, self.noise_sigma, (self.cam.height, self.cam.width, 3)
                                           ).astype(np.int16) for _ in range(3)]
        self.blur_sigma = float(self.rng.uniform(0.4, 0.9))
        self.sim = Simulation(self.rng, self.traffic, 1.0 / fps, make_shape)
        for _ in range(int(round(warmup_s * fps))):
            self.sim.step()
        self._prop_drawn = [d for m, x, y, h in self.props if (d := project_mesh(m, x, y, h, self.cam, self.sun))]

    def _lut(self, t: float) -> npt.NDArray[np.uint8]:
        amp, period, phase = self.flicker
        g = self.gain * (1 + amp * math.sin(2 * math.pi * t / period + phase))
        x = np.arange(256, dtype=np.float64)
        lut = np.stack([np.clip(x * g * self.tint[c], 0, 255) for c in range(3)], axis=1)
        return lut.astype(np.uint8).reshape(1, 256, 3)

    def _shadow(self, mask: npt.NDArray[np.uint8], a: Agent, x: float, y: float, heading: float) -> None:
        if self.shadow_dir is None:
            return
        hgt = 1.7 if a.kind == "person" else {"car": 1.5, "motorcycle": 1.5, "bus": 3.1, "truck": 3.3}[a.kind]
        half_w = 0.25 if a.kind == "person" else 0.4 if a.kind == "motorcycle" else 1.2
        c, s = math.cos(heading), math.sin(heading)
        fwd, left = np.array([c, s]), np.array([-s, c])
        base = np.array([[x, y]]) + np.array([fwd * a.length / 2 + left * half_w, fwd * a.length / 2 - left * half_w,
                                              -fwd * a.length / 2 - left * half_w, -fwd * a.length / 2 + left * half_w])
        pts = np.vstack([base, base + self.shadow_dir * hgt * 0.8])
        uv, z = self.cam.project(np.column_stack([pts, np.zeros(len(pts))]))
        if (z < 0.5).any():
            return
        hull = cv2.convexHull(np.round(uv * 4).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_8, 2)

    def frames(self, n_frames: int, visibility: bool = True, stride: int = 1
               ) -> Iterator[tuple[int, npt.NDArray[np.uint8], list[SceneObject], npt.NDArray[np.float64]]]:
        """Simulate n frames and render every ``stride``-th.

        Yields (index, image, objects far to near, visibility per object), where visibility is the
        unoccluded fraction of each object's in-image silhouette (all ones without ``visibility``).
        """
        w, h = self.cam.width, self.cam.height
        mask = np.zeros((h, w), np.uint8)
        idmap = np.zeros((h, w), np.int32) if visibility else None
        for k in range(n_frames):
            if k % stride:
                self.sim.step(frame=k)
                continue
            t = k / self.fps
            img = self.background.copy()
            mask[:] = 0
            objs: list[SceneObject] = [SceneObject(None, d) for d in self._prop_drawn]
            for a in self.sim.agents:
                x, y, heading = a.pose()
                mesh = person_pose(a.shape, a.walked) if a.kind == "person" else a.shape["mesh"]
                d = project_mesh(mesh, x, y, heading, self.cam, self.sun)  # type: ignore[arg-type]
                if d is None:
                    continue
                x1, y1, x2, y2 = d.box
                if x2 < -50 or y2 < -50 or x1 > w + 50 or y1 > h + 50:
                    continue
                self._shadow(mask, a, x, y, heading)
                objs.append(SceneObject(a, d))
            np.copyto(img, self.shadow_bg, where=mask[..., None].astype(bool))
            objs.sort(key=lambda o: -o.drawn.depth)
            if idmap is not None:
                idmap[:] = 0
            for i, o in enumerate(objs):
                paint(img, o.drawn)
                if idmap is not None:
                    paint(idmap, o.drawn, i + 1)
            vis = np.ones(len(objs))
            if idmap is not None:
                seen = np.bincount(idmap.ravel(), minlength=len(objs) + 1)
                for i, o in enumerate(objs):
                    if o.agent is None:
                        continue
                    x1, y1, x2, y2 = _clip_box(o.drawn.box, w, h)
                    if x2 <= x1 or y2 <= y1:
                        vis[i] = 0.0
                        continue
                    ix1, iy1 = int(math.floor(x1)), int(math.floor(y1))
                    crop = np.zeros((int(math.ceil(y2)) - iy1 + 1, int(math.ceil(x2)) - ix1 + 1), np.uint8)
                    paint(crop, o.drawn, 1, (ix1, iy1))
                    full = int(np.count_nonzero(crop))
                    vis[i] = min(1.0, seen[i + 1] / full) if full else 0.0
            lit = cv2.LUT(img, self._lut(t))
            noisy = cv2.GaussianBlur(lit, (3, 3), self.blur_sigma).astype(np.int16)
            noisy += self.noise_bank[k % len(self.noise_bank)]
            img = np.clip(noisy, 0, 255).astype(np.uint8)
            yield k, img, objs, vis
            self.sim.step(frame=k)


def _clip_box(box: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)


def render_clip(seed: int, seconds: float = 60.0, fps: float = 15.0, out_dir: str | Path | None = None,
                width: int = 640, height: int = 360, traffic: TrafficConfig | None = None,
                camera: Camera | None = None, model_path: str | Path | None = None,
                write_video: bool = True) -> ClipTruth:
    """Render a clip and its ground truth; with ``out_dir``, write the files listed in the module docstring.

    Args:
        seed: seeds every random choice (scene, traffic, appearance, noise).
        seconds: clip length.
        fps: frame rate of the video and of the simulation.
        out_dir: folder for the files (created); None renders in memory only.
        width: image width in pixels, when ``camera`` is not given.
        height: image height in pixels, when ``camera`` is not given.
        traffic: demand, class mix, signal plan.
        camera: the camera; default :func:`default_camera`.
        model_path: model written into agent.yaml; default the repository's models/synth-yolo11n.onnx.
        write_video: False skips the video file (truth only).

    """
    import time

    scene = Scene(seed, fps, camera, traffic, width=width, height=height)
    n_frames = int(round(seconds * fps))
    cam = scene.cam
    out = Path(out_dir) if out_dir is not None else None
    writer = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if write_video:
            writer = cv2.VideoWriter(str(out / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), fps,
                                     (cam.width, cam.height))
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write MJPG video to {out / 'clip.avi'}")
    rows: list[tuple[float, ...]] = []
    ids: dict[int, int] = {}
    t0 = time.perf_counter()
    for k, img, objs, vis in scene.frames(n_frames):
        if writer is not None:
            writer.write(img)
        for o, v in zip(objs, vis, strict=True):
            if o.agent is None:
                continue
            x1, y1, x2, y2 = _clip_box(o.drawn.box, cam.width, cam.height)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            tid = ids.setdefault(o.agent.uid, len(ids) + 1)
            rows.append((k, tid, x1, y1, x2, y2, CLASS_ID[o.agent.kind], round(float(v), 3)))
    elapsed = time.perf_counter() - t0
    if writer is not None:
        writer.release()
    agents = {a.uid: a for a in scene.sim.finished + scene.sim.agents}
    boxes = np.array(rows, np.float64).reshape(-1, 8)
    boxes[:, 2:6] = np.round(boxes[:, 2:6], 2)
    traj, tracks = [], []
    for uid, tid in ids.items():
        a = agents[uid]
        hist = [r for r in a.history if r[0] < n_frames]
        for f, x, y, hd, v in hist:
            traj.append((f, tid, round(x, 4), round(y, 4), round(hd, 5), round(v, 4)))
        in_view = boxes[boxes[:, 1] == tid, 0]
        vr = a.vroute
        tracks.append(TrackTruth(tid, a.kind, vr.origin if vr else None, vr.destination if vr else None,
                                 vr.turn if vr else None, int(in_view.min()), int(in_view.max()),
                                 round(float(np.mean([r[4] for r in hist])), 4)))
    tracks.sort(key=lambda t: t.id)
    trajectories = np.array(traj, np.float64).reshape(-1, 6)
    trajectories = trajectories[np.lexsort((trajectories[:, 1], trajectories[:, 0]))]
    lines = counting_lines(cam)
    truth = ClipTruth(seed, fps, cam.width, cam.height, n_frames, NAMES, cam.ground_to_image.tolist(),
                      cam.image_to_ground.tolist(), lines, tracks,
                      line_crossings(boxes, lines, NAMES, fps), boxes, trajectories,
                      asdict(scene.traffic.signal), out, n_frames / elapsed if elapsed > 0 else 0.0)
    if out is not None:
        write_truth(truth, out, model_path)
    return truth


def write_truth(truth: ClipTruth, out: Path, model_path: str | Path | None = None) -> None:
    """Write gt.txt, trajectories.csv, crossings.csv, tracks.csv, truth.json and agent.yaml into ``out``."""
    with open(out / "gt.txt", "w", newline="") as f:
        for r in truth.boxes[np.lexsort((truth.boxes[:, 1], truth.boxes[:, 0]))]:
            f.write(f"{int(r[0]) + 1},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4] - r[2]:.2f},{r[5] - r[3]:.2f},1,"
                    f"{int(r[6]) + 1},{r[7]:.3f}\n")
    with open(out / "trajectories.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "id", "x_m", "y_m", "heading_rad", "speed_mps"])
        for r in truth.trajectories:
            w.writerow([int(r[0]), int(r[1]), f"{r[2]:.4f}", f"{r[3]:.4f}", f"{r[4]:.5f}", f"{r[5]:.4f}"])
    with open(out / "crossings.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line_id", "track_id", "class", "direction", "frame", "ts"])
        for c in truth.crossings:
            w.writerow([c.line_id, c.track_id, c.class_name, c.direction, c.frame, f"{c.ts:.4f}"])
    with open(out / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "class", "origin", "destination", "turn", "first_frame", "last_frame", "mean_speed_mps"])
        for t in truth.tracks:
            w.writerow([t.id, t.class_name, t.origin or "", t.destination or "", t.turn or "", t.first_frame,
                        t.last_frame, f"{t.mean_speed_mps:.4f}"])
    doc = {
        "seed": truth.seed, "fps": truth.fps, "width": truth.width, "height": truth.height,
        "n_frames": truth.n_frames, "names": list(truth.names),
        "ground_to_image": truth.ground_to_image, "image_to_ground": truth.image_to_ground,
        "ground_frame": "metres; x east, y north, origin at the junction centre",
        "lines": [asdict(line) for line in truth.lines], "signal": truth.signal,
        "tracks": [asdict(t) for t in truth.tracks], "crossings": [asdict(c) for c in truth.crossings],
    }
    (out / "truth.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "agent.yaml").write_text(agent_config_yaml(truth, "clip.avi", model_path))


def calibration_points(lines: list[LineTruth]) -> list[dict[str, list[float]]]:
    """Image <-> ground pairs for the YAML: the end points of the counting lines (the generator knows both)."""
    return [{"image": list(img), "ground": [round(g[0], 3), round(g[1], 3)]}
            for ln in lines for img, g in ((ln.p1, ln.ground_p1), (ln.p2, ln.ground_p2))]


def _pixels(pts: npt.NDArray[np.float64]) -> list[list[float]]:
    out: list[list[float]] = []
    for x, y in pts:
        p = [round(float(x), 1), round(float(y), 1)]
        if not out or p != out[-1]:
            out.append(p)
    return out[:-1] if len(out) > 1 and out[0] == out[-1] else out


def _clip_to_image(poly: npt.NDArray[np.float64], width: int, height: int) -> npt.NDArray[np.float64]:
    """The part of a convex image polygon inside [0, width] x [0, height] (Sutherland-Hodgman)."""
    pts = [np.asarray(p, np.float64) for p in poly]
    for axis, bound, keep_below in ((0, 0.0, False), (0, float(width), True), (1, 0.0, False),
                                    (1, float(height), True)):
        def inside(p: npt.NDArray[np.float64], axis: int = axis, bound: float = bound,
                   keep_below: bool = keep_below) -> bool:
            return bool(p[axis] <= bound) if keep_below else bool(p[axis] >= bound)

        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur) != inside(prev):
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cut = prev + t * (cur - prev)
                cut[axis] = bound
                out.append(cut)
            if inside(cur):
                out.append(cur)
        pts = out
        if not pts:
            break
    return np.array(pts, np.float64).reshape(-1, 2)


def lane_zones(ground_to_image: npt.ArrayLike, width: int, height: int) -> list[dict[str, Any]]:
    """One zone per arm over its inbound lane, from the stop line back upstream as far as the image shows it.

    The lane's ground rectangle (centre line to curb, from ``STOP_R`` to ``r``) starts at ``r = FAR_R``
    and is shortened in ``ZONE_STEP_M`` steps, down to ``ZONE_MIN_M`` long, until every corner is in front of
    the camera; its image is then cut at the image border, so the zone reaches as far up the lane as
    the camera sees it (near the camera a lane leaves the image sideways after a few metres). An arm
    whose stop line is not entirely in the image gets no zone. Each zone is tagged with its lane
    (``<arm>-in``), approach and stop line (the arm's counting line, at the junction box edge), and
    a travel arrow towards the junction (for wrong-way events).
    """
    h = np.asarray(ground_to_image, np.float64)
    size = np.array([width, height], np.float64)
    out: list[dict[str, Any]] = []
    for arm in ARMS:
        side = inbound_point(arm, 0.0)                  # lane centre off the centre line
        half = side / np.hypot(*side) * (LANE_W / 2)    # ... and half a lane towards the curb
        near_c = inbound_point(arm, STOP_R)
        head = apply_homography(h, np.array([near_c - half, near_c + half]))
        if not ((head >= 0) & (head <= size)).all():
            continue
        far = FAR_R
        while True:
            far_c = inbound_point(arm, far)
            ground = np.array([near_c - half, near_c + half, far_c + half, far_c - half])
            if (np.column_stack([ground, np.ones(4)]) @ h[2] >= ZONE_MIN_W).all():
                break
            if far - ZONE_STEP_M - STOP_R < ZONE_MIN_M - 1e-9:
                ground = np.empty((0, 2))
                break
            far -= ZONE_STEP_M
        if not len(ground):
            continue
        poly = _pixels(_clip_to_image(apply_homography(h, ground), width, height))
        travel = apply_homography(h, np.array([inbound_point(arm, STOP_R + ZONE_STEP_M), near_c]))
        out.append({"id": f"{arm}-queue", "polygon": poly, "lane": f"{arm}-in", "approach": arm,
                    "stop_line": arm, "travel": _pixels(travel), "spillback_veh": SPILLBACK_VEH})
    return out


def agent_config_yaml(truth: ClipTruth, source: str, model_path: str | Path | None = None) -> str:
    """An edge-agent configuration for the clip: the default model, the four counting lines (tagged with
    their approach), a lane zone over each inbound lane (:func:`lane_zones`: queues, presence, spill-back
    and wrong-way), the twelve turning movements between the lines and the ground calibration."""
    model = Path(model_path) if model_path is not None else DEFAULT_MODEL
    cfg = {
        "mqtt": {"host": "${MQTT_HOST:-localhost}", "port": "${MQTT_PORT:-1883}", "client_id": "synthetic-node",
                 "topic_prefix": "traffic"},
        "model": {"path": str(model), "confidence": 0.1, "iou": 0.7, "classes": list(truth.names)},
        "statistics": {"interval_s": 10},
        "cameras": [{
            "id": "junction", "source": source, "start_time": START_TIME,
            "lines": [{"id": f"{ln.id}", "p1": list(ln.p1), "p2": list(ln.p2), "in_side": ln.in_side,
                       "approach": ln.arm} for ln in truth.lines],
            "zones": lane_zones(truth.ground_to_image, truth.width, truth.height),
            "movements": [{"id": f"{a.id}-{b.id}", "from": a.id, "to": b.id}
                          for a in truth.lines for b in truth.lines if a.id != b.id],
            "calibration": {"points": calibration_points(truth.lines)},
        }],
    }
    header = (f"# Synthetic junction, seed {truth.seed}: {truth.n_frames} frames of {truth.width}x{truth.height} "
              f"at {truth.fps:g} fps,\n# rendered by edge_agent.synth.render_clip. One counting line per approach "
              "(N, E, S, W) across the\n# carriageway at the edge of the junction box; 'in' = entering the junction.\n"
              "# One lane zone per approach over its inbound lane, from the stop line upstream (queues, presence).\n")
    text = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=120)
    return header + str(text).replace("'${MQTT_PORT:-1883}'", "${MQTT_PORT:-1883}")
