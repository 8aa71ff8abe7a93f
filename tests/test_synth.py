"""The synthetic scene generator: determinism, ground-truth consistency, labels, and counting from pixels."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.analytics import CameraAnalytics
from edge_agent.config import TrackerSection, parse_config
from edge_agent.detection import Detector
from edge_agent.pipeline import tracker_config
from edge_agent.synth import (
    NAMES,
    ClipTruth,
    Scene,
    agent_config_yaml,
    apply_homography,
    counting_lines,
    default_camera,
    render_clip,
)
from edge_agent.synth.clip import DEFAULT_MODEL, lane_zones
from edge_agent.synth.dataset import render_dataset
from edge_agent.tracking import Tracker
from edge_agent.types import Incident

ROOT = Path(__file__).resolve().parents[1]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A 40-second clip at 10 fps: long enough for a full signal cycle, every movement class and crossings."""
    out = tmp_path_factory.mktemp("clip")
    return render_clip(seed=11, seconds=40, fps=10, out_dir=out)


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    a = render_clip(seed=5, seconds=2, fps=10, out_dir=tmp_path / "a")
    b = render_clip(seed=5, seconds=2, fps=10, out_dir=tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert a.crossings == b.crossings and np.array_equal(a.boxes, b.boxes)
    c = render_clip(seed=6, seconds=2, fps=10, out_dir=tmp_path / "c")
    assert _digest(tmp_path / "c")["clip.avi"] != _digest(tmp_path / "a")["clip.avi"]
    assert not np.array_equal(a.boxes, c.boxes)


def test_same_seed_gives_identical_frames() -> None:
    first = [img for _, img, _, _ in Scene(3).frames(3)]
    again = [img for _, img, _, _ in Scene(3).frames(3)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[2])   # things move


def test_video_matches_truth(clip) -> None:  # type: ignore[no-untyped-def]
    cap = cv2.VideoCapture(str(clip.out_dir / "clip.avi"))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (clip.height, clip.width, 3)
        n += 1
    assert n == clip.n_frames
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(clip.fps)


def test_boxes_inside_image_and_mot_file(clip) -> None:  # type: ignore[no-untyped-def]
    b = clip.boxes
    assert len(b) > 100
    assert (b[:, 2] >= 0).all() and (b[:, 3] >= 0).all()
    assert (b[:, 4] <= clip.width).all() and (b[:, 5] <= clip.height).all()
    assert (b[:, 4] > b[:, 2]).all() and (b[:, 5] > b[:, 3]).all()
    assert ((b[:, 7] >= 0) & (b[:, 7] <= 1)).all()
    assert set(np.unique(b[:, 6]).astype(int)) <= set(range(len(NAMES)))
    rows = np.loadtxt(clip.out_dir / "gt.txt", delimiter=",").reshape(-1, 9)
    assert len(rows) == len(b)
    assert rows[:, 0].min() == 1 and rows[:, 0].max() <= clip.n_frames      # MOT frames are 1-based
    classes = {t.id: t.class_name for t in clip.tracks}
    assert all(NAMES[int(r[7]) - 1] == classes[int(r[1])] for r in rows)
    seen = Counter(t.class_name for t in clip.tracks)
    assert {"person", "car"} <= set(seen) and len(seen) >= 4, seen


def test_crossings_agree_with_routes(clip) -> None:  # type: ignore[no-untyped-def]
    """A vehicle enters through the line of its origin arm and leaves through its destination's."""
    assert len(clip.crossings) >= 10
    tracks = {t.id: t for t in clip.tracks}
    lines = {ln.id: ln for ln in clip.lines}
    for c in clip.crossings:
        t = tracks[c.track_id]
        assert t.first_frame <= c.frame <= t.last_frame
        if t.origin is None:
            continue
        assert c.line_id == (t.origin if c.direction == "in" else t.destination), (c, t)
        # the anchor at the crossing frame is on the side the direction names
        row = clip.boxes[(clip.boxes[:, 0] == c.frame) & (clip.boxes[:, 1] == c.track_id)][0]
        anchor = np.array([(row[2] + row[4]) / 2, row[5]])
        ln = lines[c.line_id]
        (x1, y1), (x2, y2) = ln.p1, ln.p2
        side = (x2 - x1) * (anchor[1] - y1) - (y2 - y1) * (anchor[0] - x1)
        on_in_side = (side > 0) == (ln.in_side == "right")
        assert on_in_side == (c.direction == "in")
    assert sum(1 for c in clip.crossings if c.direction == "in") >= 5
    moves = clip.movements()
    assert all(o != d for o, d, _ in moves)


def test_speeds_match_positions(clip) -> None:  # type: ignore[no-untyped-def]
    tr = clip.trajectories
    dt = 1 / clip.fps
    checked = 0
    for tid in np.unique(tr[:, 1]):
        t = tr[tr[:, 1] == tid]
        step = np.hypot(*np.diff(t[:, 2:4], axis=0).T) / dt
        expected = (t[:-1, 5] + t[1:, 5]) / 2         # trapezoidal integration of the speed
        ok = np.diff(t[:, 0]) == 1
        assert np.all(step[ok] <= expected[ok] * 1.005 + 1e-3), tid     # a chord is never longer than its arc
        straight = ok & (np.abs(np.diff(t[:, 4])) < 0.02)               # ... and equal to it on straights
        assert np.all(np.abs(step[straight] - expected[straight]) <= 0.005 * expected[straight] + 1e-3), tid
        checked += int(straight.sum())
    assert checked > 500
    assert tr[:, 5].max() > 8 and (tr[:, 5] >= 0).all()
    assert (tr[:, 5] < 0.1).any()                      # someone waits at a red light


def test_homography_puts_feet_under_boxes(clip) -> None:  # type: ignore[no-untyped-def]
    """The ground point of a pedestrian maps to the bottom centre of its box."""
    h = np.asarray(clip.ground_to_image)
    inv = np.asarray(clip.image_to_ground)
    assert np.allclose(h @ inv / (h @ inv)[2, 2], np.eye(3), atol=1e-9)
    people = {t.id for t in clip.tracks if t.class_name == "person"}
    b, tr = clip.boxes, clip.trajectories
    errs = []
    for row in b[(b[:, 7] > 0.99) & np.isin(b[:, 1], list(people))]:
        x1, y1, x2, y2 = row[2:6]
        if x1 <= 0 or y1 <= 0 or x2 >= clip.width or y2 >= clip.height:
            continue
        g = tr[(tr[:, 0] == row[0]) & (tr[:, 1] == row[1])][0, 2:4]
        u, v = apply_homography(h, g)[0]
        errs.append((u - (x1 + x2) / 2, v - y2, y2 - y1))
    e = np.array(errs)
    assert len(e) > 20
    # the box bottom is the lower foot: within half a stride (~0.3 of the height) of the ground point
    assert np.all(np.abs(e[:, 1]) <= 0.3 * e[:, 2] + 2)
    assert np.all(np.abs(e[:, 0]) <= 0.35 * e[:, 2] + 2)
    assert np.median(np.abs(e[:, 1])) <= 0.1 * np.median(e[:, 2]) + 1


def test_yolo_labels_match_rendered_objects(tmp_path: Path) -> None:
    stats = render_dataset(tmp_path, [4], "train", stills_per_scene=3, every=2, fps=4, demo_camera_share=1.0)
    assert stats.images == 3 and stats.labels > 5
    data = (tmp_path / "data.yaml").read_text()
    assert "images/train" in data and "person" in data
    bg = Scene(4, 4.0, default_camera(), warmup_s=0).background    # same seed: same road
    for img_path in sorted((tmp_path / "images" / "train").glob("*.jpg")):
        img = cv2.imread(str(img_path))
        h, w = img.shape[:2]
        lines = (tmp_path / "labels" / "train" / f"{img_path.stem}.txt").read_text().split("\n")
        for line in filter(None, lines):
            c, cx, cy, bw, bh = map(float, line.split())
            assert 0 <= int(c) < len(NAMES) and 0 < bw <= 1 and 0 < bh <= 1
            assert bw / 2 <= cx <= 1 - bw / 2 + 1e-6 and bh / 2 <= cy <= 1 - bh / 2 + 1e-6
            x1, y1 = int((cx - bw / 2) * w), int((cy - bh / 2) * h)
            x2, y2 = int(math.ceil((cx + bw / 2) * w)), int(math.ceil((cy + bh / 2) * h))
            diff = np.abs(img[y1:y2, x1:x2].astype(int) - bg[y1:y2, x1:x2].astype(int)).sum(axis=2)
            assert (diff > 60).mean() > 0.15, (img_path.name, line)     # something was drawn there


def test_committed_config_matches_the_generator() -> None:
    path = ROOT / "configs" / "synthetic.yaml"
    cfg = parse_config(path.read_text(), path, check_files=False)
    lines = {ln.id: ln for ln in cfg.cameras[0].lines}
    for truth in counting_lines(default_camera()):
        ln = lines[truth.id]
        assert (ln.p1, ln.p2, ln.in_side) == (truth.p1, truth.p2, truth.in_side)
    cam = default_camera()
    want = lane_zones(cam.ground_to_image, cam.width, cam.height)
    assert [z.id for z in cfg.cameras[0].zones] == [w["id"] for w in want] == ["N-queue", "E-queue", "S-queue",
                                                                              "W-queue"]
    for z, w in zip(cfg.cameras[0].zones, want, strict=True):
        got = z.model_dump(exclude_none=True)
        assert got == {**w, "polygon": [tuple(p) for p in w["polygon"]],
                       "travel": tuple(tuple(p) for p in w["travel"])}, z.id
        assert z.lane == f"{z.approach}-in" and z.stop_line in lines
    assert not cfg.cameras[0].references()
    assert cfg.model.path.name == DEFAULT_MODEL.name


@dataclass
class PixelRun:
    """What the detector, tracker and analytics made of a rendered clip."""

    crossings: Counter[tuple[str, str, str]] = field(default_factory=Counter)   # line, direction, class
    movements: Counter[tuple[str, str, str]] = field(default_factory=Counter)   # origin, destination, class
    speeds: list[tuple[str, str, float, float]] = field(default_factory=list)   # line, direction, time, km/h
    incidents: list[Incident] = field(default_factory=list)


def run_on_pixels(truth: ClipTruth, folder: Path, detector: Detector) -> PixelRun:
    """The agent's stages (no MQTT) on ``folder/clip.avi`` with the generator's configuration."""
    cfg = parse_config(agent_config_yaml(truth, "clip.avi"), folder / "agent.yaml")
    tracker = Tracker(tracker_config(TrackerSection()))
    analytics = CameraAnalytics(cfg.cameras[0], cfg, detector.names)
    cap = cv2.VideoCapture(str(folder / "clip.avi"))
    out = PixelRun()
    k = 0
    while True:
        ok, frame = cap.read()
        ts = k / truth.fps
        # the last call hands over the crossings still waiting for the second half of their speed window
        if ok:
            dets = detector(frame)
            size = (truth.width, truth.height)
            fe = analytics.update(tracker.update(dets, ts, frame_size=size), ts, dets, size)
        else:
            fe = analytics.close(ts)
        for ev in fe.crossings:
            out.crossings[(ev.line_id, ev.direction.value, ev.class_name)] += 1
            if ev.speed_kmh is not None:
                out.speeds.append((ev.line_id, ev.direction.value, ev.ts, ev.speed_kmh))
        out.incidents += fe.incidents
        for mv in fe.movements:
            origin, destination = mv.movement_id.split("-")
            out.movements[(origin, destination, mv.class_name)] += 1
        if not ok:
            return out
        k += 1


def speed_errors(truth: ClipTruth, speeds: list[tuple[str, str, float, float]]) -> tuple[list[float], list[str]]:
    """Relative error of the speed measured at each true vehicle crossing, and the crossings without one.

    Each true crossing of a vehicle is matched with the measured crossing of the same line and
    direction nearest in time, within 1 s (the truth times a crossing by the frame of its true box,
    the measured one is interpolated on the detected box, whose bottom edge differs by a few pixels),
    and its speed compared with the vehicle's true speed in that frame.
    """
    traj = truth.trajectories
    errors, unmeasured = [], []
    for c in truth.crossings:
        cls = next(t.class_name for t in truth.tracks if t.id == c.track_id)
        if cls == "person":
            continue
        true_kmh = 3.6 * float(traj[(traj[:, 0] == c.frame) & (traj[:, 1] == c.track_id), 5][0])
        near = [(abs(t - c.ts), v) for line, d, t, v in speeds if line == c.line_id and d == c.direction
                and abs(t - c.ts) < 1.0]
        if near:
            errors.append(abs(min(near)[1] - true_kmh) / max(true_kmh, 1.0))
        else:
            unmeasured.append(f"track {c.track_id} at {c.line_id} {c.direction} t={c.ts:.1f}")
    return errors, unmeasured


@pytest.mark.slow
def test_counts_movements_and_speeds_from_pixels_match_truth(tmp_path: Path) -> None:
    """Detector + tracker + the camera's analytics on a fresh clip, against the generator's truth:
    line counts by class and direction and turning movements exact, speeds at the lines within 5 %."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"{DEFAULT_MODEL} not built yet (scripts/train_default_model.py)")
    truth = render_clip(seed=2024, seconds=30, fps=10, out_dir=tmp_path)
    det = Detector(DEFAULT_MODEL, confidence=0.1, device="cpu")
    assert det.names == list(NAMES)
    run = run_on_pixels(truth, tmp_path, det)
    got, moves, speeds = run.crossings, run.movements, run.speeds
    wrong_way = [i for i in run.incidents if i.kind == "wrong_way"]  # nobody drives the wrong way here
    want = truth.line_counts()
    assert sum(want.values()) >= 10
    assert got == want, f"missing {want - got}, extra {got - want}"
    assert not wrong_way, wrong_way
    want_moves = truth.movements()
    assert sum(want_moves.values()) >= 5
    assert moves == want_moves, f"missing {want_moves - moves}, extra {moves - want_moves}"
    errors, unmeasured = speed_errors(truth, speeds)
    assert not unmeasured, f"no speed measured for {unmeasured}"
    assert len(errors) >= 10
    print(f"speed error: mean {np.mean(errors):.2%}, worst {max(errors):.2%} over {len(errors)} crossings")
    assert float(np.mean(errors)) <= 0.05, f"mean absolute speed error {np.mean(errors):.1%}"


@pytest.mark.slow
def test_turning_movements_over_several_clips_within_two_percent(tmp_path: Path) -> None:
    """Five fresh clips (30 s each; 2024 is also the clip above): line counts and turning movements summed.

    These are the clips the tracker and counters were debugged on. On clips they were not
    (``scripts/synth_accuracy.py``, seeds 11-15 and 21-25) the same model counts 3 of 210 line
    crossings (1.4 %) and 3 of 97 movements (3.1 %) wrong."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"{DEFAULT_MODEL} not built yet (scripts/train_default_model.py)")
    det = Detector(DEFAULT_MODEL, confidence=0.1, device="cpu")
    line_err = move_err = lines = moves = 0
    for seed in (2024, 1, 2, 7, 99):
        truth = render_clip(seed=seed, seconds=30, fps=10, out_dir=tmp_path / str(seed))
        run = run_on_pixels(truth, tmp_path / str(seed), det)
        got, got_moves = run.crossings, run.movements
        want, want_moves = truth.line_counts(), truth.movements()
        lines += sum(want.values())
        moves += sum(want_moves.values())
        line_err += sum(((want - got) + (got - want)).values())
        move_err += sum(((want_moves - got_moves) + (got_moves - want_moves)).values())
    # measured: 1 of 124 line crossings and 1 of 58 movements wrong (seed 99: a truck's box takes in the bus
    # it passes behind and is pulled across a line)
    assert lines >= 100 and moves >= 50
    assert line_err <= 0.02 * lines, f"{line_err} of {lines} line crossings wrong"
    assert move_err <= 0.02 * moves, f"{move_err} of {moves} movements wrong"
