"""Seeing the setup: `edge-agent snapshot`, the overlay it draws, check-config's calibration error, the annotator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from conftest import shared_file
from edge_agent.annotate import Annotator, track_colour
from edge_agent.cli import main
from edge_agent.config import CameraConfig, LineConfig, load_config
from edge_agent.overlay import CALIB_COLOUR, GRID_COLOUR, IN_COLOUR, LINE_COLOUR, ZONE_ALPHA, in_normal, zone_colour
from edge_agent.types import CrossingEvent, Direction, Frame, Tracks

ZONE = [[300, 215], [555, 210], [555, 300], [330, 305]]
CALIBRATION = [([120, 200], [0, 0]), ([620, 200], [20, 0]), ([700, 420], [20, 10]), ([40, 420], [0, 10]),
               ([370, 300], [10.1, 5.15])]


def write_config(tmp_path: Path, video: Path, model: Path | None = None, calibrated: bool = True,
                 zones: bool = True) -> Path:
    cam: dict[str, Any] = {
        "id": "campus", "source": str(video), "lines": [
            {"id": "west", "p1": [250, 170], "p2": [250, 330], "in_side": "left", "lane": "eb"},
            {"id": "east", "p1": [560, 200], "p2": [560, 420], "in_side": "left"}]}
    if zones:
        cam["zones"] = [{"id": "queue", "polygon": ZONE, "lane": "eb", "stop_line": "east",
                         "travel": [[320, 262], [530, 255]]}]
    if calibrated:
        cam["calibration"] = {"points": [{"image": i, "ground": g} for i, g in CALIBRATION]}
    cfg = {"model": {"path": str(model or tmp_path / "absent.onnx")}, "cameras": [cam]}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def frame_of(video: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    for _ in range(index + 1):
        ok, img = cap.read()
        assert ok
    cap.release()
    return img


def near(img: np.ndarray, xy: Any, colour: Any, tol: int = 40, r: int = 1) -> bool:
    """Whether a pixel within ``r`` of ``xy`` has ``colour`` (max channel difference <= tol)."""
    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    patch = img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].astype(int)
    return bool((np.abs(patch - np.array(colour)).max(axis=2) <= tol).any())


def snapshot(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["snapshot", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_snapshot_draws_lines_zone_and_grid_where_they_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = shared_file("data/vtest.avi")
    cfg = write_config(tmp_path, video)
    out = tmp_path / "setup.png"
    rc, stdout, err = snapshot(capsys, "-c", str(cfg), "--camera", "campus", "-o", str(out))
    assert rc == 0, err
    assert "reprojection error rms 0.046 m, max 0.080 m (point 4)" in stdout
    img = cv2.imread(str(out))
    orig = frame_of(video, 0)
    assert img is not None and img.shape == orig.shape == (576, 768, 3)
    cam = load_config(cfg, check_files=False).cameras[0]

    # the counting line "east", yellow along its length (grid lines and labels may cross it here and there)
    ys = np.linspace(215, 405, 40)
    on_line = [near(img, (560, y), LINE_COLOUR) for y in ys]
    assert np.mean(on_line) > 0.8
    # its "in" arrow: in_side left walking p1 (top) -> p2 (bottom) is the screen's right
    assert np.allclose(in_normal(cam.lines[1]), [1, 0])
    assert near(img, (575, 310), IN_COLOUR, r=2) and near(img, (585, 310), IN_COLOUR, r=2)
    assert not near(img, (545, 310), IN_COLOUR, r=3)

    # the zone: blended at ZONE_ALPHA with its colour inside, untouched by the fill just outside
    expected = (orig.astype(float) * (1 - ZONE_ALPHA) + np.array(zone_colour(0)) * ZONE_ALPHA)
    inside = [(x, y) for x in range(360, 540, 12) for y in range(230, 290, 8)]
    blended = [np.abs(img[y, x].astype(float) - expected[y, x]).max() <= 2 for x, y in inside]
    assert np.mean(blended) > 0.6
    outside = [(x, y) for x in range(360, 540, 12) for y in range(320, 380, 8)]
    assert np.mean([np.abs(img[y, x].astype(float) - expected[y, x]).max() <= 2 for x, y in outside]) < 0.1

    # the ground grid: the lines X = 0 m and X = 10 m, projected through the calibration
    plane = cam.calibration.plane()  # type: ignore[union-attr]
    for x_m in (0.0, 10.0):
        pts = plane.to_image([[x_m, y_m] for y_m in np.linspace(1, 9, 25)])
        assert np.mean([near(img, p, GRID_COLOUR, tol=60) for p in pts]) > 0.7, x_m
    # no grid colour in the untouched frame: the test above sees the drawing, not the scene
    assert np.mean([near(orig, p, GRID_COLOUR, tol=60) for p in plane.to_image([[10, y] for y in range(1, 10)])]) == 0
    # calibration points: a magenta ring around each clicked image point
    for (x, y), _ in CALIBRATION:
        ring = [(x + 6 * np.cos(a), y + 6 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
        assert np.mean([near(img, p, CALIB_COLOUR, tol=60) for p in ring]) > 0.5


def test_snapshot_picks_the_frame_and_draws_no_grid_without_calibration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = shared_file("data/vtest.avi")
    cfg = write_config(tmp_path, video, calibrated=False, zones=False)
    out = tmp_path / "f.png"
    rc, stdout, err = snapshot(capsys, "-c", str(cfg), "-o", str(out), "--frame", "37")
    assert rc == 0, err
    assert "calibration: none" in stdout
    img, orig = cv2.imread(str(out)), frame_of(video, 37)
    # far from the lines and the caption the PNG is exactly frame 37, and not frame 0
    assert np.array_equal(img[:150, 620:], orig[:150, 620:])
    assert not np.array_equal(img[:150, 620:], frame_of(video, 0)[:150, 620:])
    assert (np.abs(img.astype(int) - np.array(GRID_COLOUR)).max(axis=2) <= 30).sum() < 50


def test_snapshot_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = shared_file("data/vtest.avi")
    cfg = write_config(tmp_path, video)
    rc, _, err = snapshot(capsys, "-c", str(cfg), "--camera", "north", "-o", str(tmp_path / "x.png"))
    assert rc == 2
    assert "camera 'north' is not in" in err and "its cameras: campus" in err
    rc, _, err = snapshot(capsys, "-c", str(cfg), "--camera", "campus", "-o", str(tmp_path / "x.png"),
                          "--frame", "100000")
    assert rc == 1 and "past the end" in err and "795 frames" in err
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all" * 100)
    cfg = write_config(tmp_path, broken)
    rc, _, err = snapshot(capsys, "-c", str(cfg), "-o", str(tmp_path / "x.png"))
    assert rc == 1 and "camera campus" in err and "broken.avi" in err
    assert not (tmp_path / "x.png").exists()


def test_check_config_prints_the_reprojection_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, shared_file("data/vtest.avi"), model=shared_file("models/yolov8n_int8.onnx"))
    assert main(["check-config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "    calibration: 5 points, reprojection error rms 0.046 m, max 0.080 m (point 4)" in out


def test_in_arrow_follows_the_counting_convention() -> None:
    # walking p1 -> p2 to the right on the image (y down), the right hand points down
    right = LineConfig(id="a", p1=(10, 10), p2=(110, 10), in_side="right")
    left = LineConfig(id="b", p1=(10, 10), p2=(110, 10), in_side="left")
    assert np.allclose(in_normal(right), [0, 1]) and np.allclose(in_normal(left), [0, -1])


def test_annotator_writes_every_frame_with_setup_boxes_and_counts(tmp_path: Path) -> None:
    cam = CameraConfig.model_validate({
        "id": "cam", "source": "x.avi",
        "lines": [{"id": "mid", "p1": [160, 20], "p2": [160, 340], "in_side": "right"}],
        "zones": [{"id": "left-half", "polygon": [[0, 0], [150, 0], [150, 360], [0, 360]]}]})
    path = tmp_path / "out" / "annotated.avi"
    ann = Annotator(path, 10.0, ["person", "car"], cam)
    n = 12
    for i in range(n):
        x = 40 + 20 * i
        tracks = Tracks(np.array([7]), np.array([[x, 150, x + 40, 230]], np.float32), np.array([0.9], np.float32),
                        np.array([1]), np.array([0]), np.zeros((1, 2), np.float32))
        events = [CrossingEvent("cam", "mid", 7, "car", Direction.OUT, i / 10)] if i == 6 else []
        ann.add(Frame("cam", i, i / 10, np.full((360, 640, 3), 90, np.uint8)), tracks, events,
                panel={"queue eb": "3 veh"} if i else None)
        if i == 0:
            assert ann.zone_occupancy(tracks) == {"left-half": 1}
    ann.close()
    assert ann.counts["mid"] == {Direction.IN: 0, Direction.OUT: 1}
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == n and frames[0].shape == (360, 640, 3)
    last = frames[-1]
    assert near(last, (160, 300), LINE_COLOUR, tol=60)          # the line
    # its in arrow: walking p1 -> p2 down the image, the right hand is the screen's left
    assert near(last, (160 - 10, 180), IN_COLOUR, tol=60, r=2) and not near(last, (160 + 10, 180), IN_COLOUR, tol=60)
    assert near(last, (260, 200), track_colour(7), tol=60)     # the box of track 7 (x 260..300 in the last frame)
    assert near(last, (200, 230), track_colour(7), tol=60)     # its trail, behind it at its bottom centre


def test_setup_scales_with_the_image() -> None:
    from edge_agent.overlay import Style

    small, big = Style.for_size(640, 360), Style.for_size(1920, 1080)
    assert small.thick == 2 and big.thick == 3 and big.font > 2 * small.font and big.px(10) == 3 * small.px(10)
