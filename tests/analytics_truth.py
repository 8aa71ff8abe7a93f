"""Trajectories with exact ground truth, for checking the analytics without video.

A signalised approach seen by a pinhole camera: two northbound lanes of a
straight road (ground y from -130 m to the stop line at y = 0), then the
junction, where lane ``n1`` turns left (to the west) or goes straight and lane
``n2`` goes straight or turns right. Vehicles arrive at random, each with its
own desired speed, follow the vehicle ahead with a simple car-following rule,
stop on red behind the stop line and discharge on green. The simulation runs at
100 Hz in metres; the camera is sampled at 10 fps by projecting each vehicle's
ground point (the middle of its front, the box anchor) through the camera's
homography, with pixel noise.

Everything the analytics should report is computed here from the simulation,
independently of the code under test: crossing times (interpolated at 100 Hz)
and speeds at the counting lines, the movement of every vehicle, which frames
have a vehicle in the queue zone, and the true queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge_agent.geometry import apply_homography
from edge_agent.types import Tracks

FPS = 10.0
DT = 0.01
W, H = 1280, 720
LANE_X = {"n1": 1.75, "n2": 5.25}
START_Y = -95.0           # vehicles appear here
COUNT_Y = -55.0           # counting line across each lane
ZONE_Y = (-40.0, 0.0)     # queue zone of each lane, up to the stop line
CLASSES = ["person", "car", "motorcycle", "bus", "truck"]
LENGTH = {"car": 4.5, "motorcycle": 2.2, "bus": 12.0, "truck": 9.0}
T0 = 1_714_982_400.0      # 2024-05-06T08:00:00Z


def camera_homography() -> np.ndarray:
    """Ground (metres) -> image (pixels) for a camera 12 m up at y = -100 m looking north and down."""
    f = 1000.0
    k = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    pitch = np.deg2rad(16.0)  # below the horizon
    # camera axes in world coordinates: x right (east), y down, z forward (north, tilted down)
    x_c = np.array([1.0, 0.0, 0.0])
    z_c = np.array([0.0, np.cos(pitch), -np.sin(pitch)])
    y_c = np.cross(z_c, x_c)
    r = np.stack([x_c, y_c, z_c])
    c = np.array([3.5, -100.0, 12.0])
    t = -r @ c
    h = k @ np.column_stack([r[:, 0], r[:, 1], t])
    return h / h[2, 2]


@dataclass
class Vehicle:
    vid: int
    lane: str
    cls: str
    v0: float                 # desired speed, m/s
    turn: str                 # "straight", "left" or "right"
    s: float = 0.0            # distance travelled along the path, m
    v: float = 0.0
    born: float = 0.0
    path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    cum: np.ndarray = field(default_factory=lambda: np.zeros(0))
    s_exit: float = math.inf  # distance along the path where it crosses its exit line

    def position(self) -> np.ndarray:
        return np.array([np.interp(self.s, self.cum, self.path[:, 0]), np.interp(self.s, self.cum, self.path[:, 1])])


def _path(lane: str, turn: str) -> np.ndarray:
    x = LANE_X[lane]
    pts = [(x, START_Y), (x, 0.0)]
    if turn == "straight":
        pts.append((x, 80.0))
    else:
        sign = -1.0 if turn == "left" else 1.0
        radius = 12.0 if turn == "left" else 6.0
        cy = 0.0 if turn == "right" else 4.0
        cx = x + sign * radius
        for a in np.linspace(0, np.pi / 2, 12)[1:]:
            pts.append((cx - sign * radius * np.cos(a), cy + radius * np.sin(a)))
        pts.append((cx + sign * 70.0, cy + radius))
    p = np.asarray(pts)
    return p


@dataclass
class Truth:
    crossings: list[tuple[int, str, str, float, float]]   # vid, line id, class, time, speed km/h
    movements: list[tuple[int, str, str, float]]          # vid, movement id, class, time it reached the exit
    frames: list[Tracks]
    frame_ts: list[float]
    zone_vehicles: dict[str, list[int]]                   # lane zone -> vehicles inside, per frame
    zone_queued: dict[str, list[int]]                     # -> vehicles slower than 5 km/h inside, per frame
    zone_dwell: dict[str, list[tuple[float, float]]]      # -> (time it left, dwell s), first frame in to first out
    homography: np.ndarray                                # ground -> image
    zone_polygons: dict[str, list[list[float]]]           # image pixels
    lines: dict[str, tuple[list[float], list[float]]]     # image pixels
    exits: dict[str, tuple[list[float], list[float]]]


def ground_to_image(h: np.ndarray, pts: list[tuple[float, float]]) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in apply_homography(h, pts)]


def simulate(duration_s: float = 600.0, seed: int = 1, noise_px: float = 0.5, headway_s: float = 3.0,
             cycle_s: float = 50.0, red_s: float = 20.0) -> Truth:
    """Run the approach for ``duration_s`` seconds; return per-frame Tracks and the truth."""
    rng = np.random.default_rng(seed)
    h = camera_homography()
    stop_y = 0.0
    exits = {"exit_north": ((0.0, 40.0), (8.0, 40.0)), "exit_west": ((-30.0, 8.0), (-30.0, 25.0)),
             "exit_east": ((30.0, 0.0), (30.0, 15.0))}
    lines_g = {f"count_{ln}": ((x - 1.7, COUNT_Y), (x + 1.7, COUNT_Y)) for ln, x in LANE_X.items()}
    zones_g = {f"q_{ln}": [(x - 1.7, ZONE_Y[0]), (x + 1.7, ZONE_Y[0]), (x + 1.7, ZONE_Y[1]), (x - 1.7, ZONE_Y[1])]
               for ln, x in LANE_X.items()}
    next_arrival = {ln: float(rng.exponential(headway_s)) for ln in LANE_X}
    vehicles: list[Vehicle] = []
    done: list[Vehicle] = []
    vid = 0
    crossings: list[tuple[int, str, str, float, float]] = []
    movements: list[tuple[int, str, str, float]] = []
    frames: list[Tracks] = []
    frame_ts: list[float] = []
    zone_vehicles: dict[str, list[int]] = {z: [] for z in zones_g}
    zone_queued: dict[str, list[int]] = {z: [] for z in zones_g}
    s_line = -START_Y + COUNT_Y
    steps = int(round(duration_s / DT))
    entered: dict[str, dict[int, float]] = {ln: {} for ln in LANE_X}
    zone_dwell: dict[str, list[tuple[float, float]]] = {f"q_{ln}": [] for ln in LANE_X}
    frame_every = int(round(1 / (FPS * DT)))
    for step in range(steps + 1):
        t = step * DT
        for ln in LANE_X:
            ahead = [v for v in vehicles if v.lane == ln]
            room = not ahead or min(v.s for v in ahead) > 12.0
            if t >= next_arrival[ln] and room:
                cls = str(rng.choice(["car", "car", "car", "car", "truck", "bus", "motorcycle"]))
                turn = str(rng.choice(["straight", "left"] if ln == "n1" else ["straight", "right"], p=[0.6, 0.4]))
                v0 = float(rng.uniform(30, 60) if cls in ("car", "motorcycle") else rng.uniform(30, 45)) / 3.6
                path = _path(ln, turn)
                cum = np.r_[0, np.cumsum(np.hypot(*np.diff(path, axis=0).T))]
                vid += 1
                exit_id = {"straight": "exit_north", "left": "exit_west", "right": "exit_east"}[turn]
                vehicles.append(Vehicle(vid, ln, cls, v0, turn, 0.0, v0, t, path, cum,
                                        _exit_s(path, cum, exits[exit_id])))
                next_arrival[ln] = t + max(1.6, float(rng.exponential(headway_s)))
        red = (t % cycle_s) >= cycle_s - red_s
        # car following: stop for the vehicle ahead in the lane, and for the stop line on red
        for ln in LANE_X:
            lane_v = sorted((v for v in vehicles if v.lane == ln), key=lambda v: -v.s)
            for i, v in enumerate(lane_v):
                gap = math.inf
                if i > 0:
                    lead = lane_v[i - 1]
                    gap = lead.s - LENGTH[lead.cls] - 2.0 - v.s
                stop_s = -START_Y + stop_y - 0.5  # distance along the path to the stop line
                if red and v.s <= stop_s:
                    gap = min(gap, stop_s - v.s)
                v_allow = math.sqrt(2 * 4.5 * max(gap, 0.0))
                target = min(v.v0, v_allow)
                dv = min(max(target - v.v, -6.0 * DT), 2.0 * DT)
                old_s = v.s
                v.v = max(0.0, v.v + dv)
                v.s += v.v * DT
                if old_s < s_line <= v.s:
                    frac = (s_line - old_s) / (v.s - old_s)
                    crossings.append((v.vid, f"count_{v.lane}", v.cls, T0 + t + frac * DT, v.v * 3.6))
                if old_s < v.s_exit <= v.s:
                    movements.append((v.vid, f"{v.lane}_{v.turn}", v.cls, T0 + t))
        for v in [v for v in vehicles if v.s >= v.cum[-1] - 1.0]:
            vehicles.remove(v)
            done.append(v)
        if step % frame_every == 0:
            ts = T0 + t
            frame_ts.append(ts)
            frames.append(_tracks(vehicles, h, rng, noise_px))
            for ln in LANE_X:  # the lane zone is the straight stretch ZONE_Y of the lane
                inside = [v for v in vehicles if v.lane == ln and ZONE_Y[0] <= START_Y + v.s <= ZONE_Y[1]]
                zone_vehicles[f"q_{ln}"].append(len(inside))
                zone_queued[f"q_{ln}"].append(sum(1 for v in inside if v.v * 3.6 < 5.0))
                now = {v.vid for v in inside}
                for v in inside:
                    entered[ln].setdefault(v.vid, ts)
                for gone in [x for x in entered[ln] if x not in now]:
                    zone_dwell[f"q_{ln}"].append((ts, ts - entered[ln].pop(gone)))
    return Truth(crossings=crossings, movements=movements, frames=frames, frame_ts=frame_ts,
                 zone_vehicles=zone_vehicles, zone_queued=zone_queued, zone_dwell=zone_dwell, homography=h,
                 zone_polygons={z: ground_to_image(h, p) for z, p in zones_g.items()},
                 lines={k: tuple(ground_to_image(h, list(p))) for k, p in lines_g.items()},  # type: ignore[misc]
                 exits={k: tuple(ground_to_image(h, list(p))) for k, p in exits.items()})  # type: ignore[misc]


def _exit_s(path: np.ndarray, cum: np.ndarray, line: tuple[tuple[float, float], ...]) -> float:
    """Distance along a polyline path where it first crosses a line segment (inf if it never does)."""
    a, b = np.asarray(line[0]), np.asarray(line[1])

    def side(p: np.ndarray) -> float:
        return float((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))

    for i in range(len(path) - 1):
        s0, s1 = side(path[i]), side(path[i + 1])
        if s0 * s1 < 0:
            return float(cum[i] + (cum[i + 1] - cum[i]) * s0 / (s0 - s1))
    return math.inf


def _tracks(vehicles: list[Vehicle], h: np.ndarray, rng: np.random.Generator, noise_px: float) -> Tracks:
    rows = []
    for v in vehicles:
        x, y = apply_homography(h, v.position()[None])[0]
        x += rng.normal(0, noise_px)
        y += rng.normal(0, noise_px)
        if not (0 <= x < W and 0 <= y < H):
            continue
        # box: a vehicle-sized rectangle standing on its anchor (the size does not matter to the analytics)
        top = apply_homography(h, (v.position() + [0, LENGTH[v.cls]])[None])[0][1]
        w = max(4.0, 2.0 * 1000.0 / max(1.0, v.position()[1] + 100.0))
        rows.append((v.vid, [x - w / 2, min(top, y - 4), x + w / 2, y], CLASSES.index(v.cls)))
    if not rows:
        return Tracks.empty()
    n = len(rows)
    return Tracks(track_id=np.array([r[0] for r in rows], np.int64),
                  xyxy=np.array([r[1] for r in rows], np.float32),
                  confidence=np.full(n, 0.9, np.float32),
                  class_id=np.array([r[2] for r in rows], np.int64),
                  det_index=np.arange(n, dtype=np.int64),
                  velocity=np.zeros((n, 2), np.float32))
