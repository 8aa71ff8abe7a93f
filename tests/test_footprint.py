"""The camera behind a calibration, and speeds fitted to vehicles' footprints rather than their boxes.

The ground truth is the synthetic generator's pinhole camera (``edge_agent.synth.camera``): a 3D box
projected through it and boxed as a detector boxes it, with no detector in between.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_agent.analytics.kinematics import Kinematics
from edge_agent.config import parse_config
from edge_agent.geometry import GroundPlane, PinholeCamera
from edge_agent.snapshot import camera_summary
from edge_agent.synth.camera import Camera
from edge_agent.types import Tracks

W, H = 640, 360
CAR = (4.5, 1.8, 1.5)


def pole(position: tuple[float, float, float] = (-13.0, -27.0, 10.0), hfov: float = 66.0) -> Camera:
    return Camera.look_at(position, (0.0, 0.0, 0.0), hfov, W, H)


def plane_of(cam: Camera, mirror: bool = False) -> GroundPlane:
    """A calibration from four road points clicked on the image (mirror: a left-handed ground frame)."""
    ground = np.array([[-6.0, -4.0], [6.0, -4.0], [7.0, 9.0], [-5.0, 8.0], [0.0, 2.0]])
    image, _ = cam.project(np.c_[ground, np.zeros(len(ground))])
    return GroundPlane.fit(image, ground * ([1, -1] if mirror else [1, 1]))


def box_of(cam: Camera, centre: np.ndarray, heading: float, size: tuple[float, float, float]) -> np.ndarray:
    """The image box (x1, y1, x2, y2) of a vehicle: its 8 corners projected, boxed."""
    length, width, height = size
    d = np.array([np.cos(heading), np.sin(heading)])
    n = np.array([-d[1], d[0]])
    corners = [np.r_[centre + sl * length / 2 * d + sw * width / 2 * n, z]
               for sl in (-1, 1) for sw in (-1, 1) for z in (0.0, height)]
    uv, _ = cam.project(np.array(corners))
    return np.r_[uv.min(axis=0), uv.max(axis=0)]


@pytest.mark.parametrize("position, hfov", [((-13.0, -27.0, 10.0), 66.0), ((20.0, -5.0, 7.5), 55.0),
                                            ((3.0, 30.0, 13.0), 75.0)])
def test_the_camera_is_recovered_from_a_calibration(position: tuple[float, float, float], hfov: float) -> None:
    cam = pole(position, hfov)
    got = PinholeCamera.from_plane(plane_of(cam), W, H)
    assert got is not None
    assert got.focal_px == pytest.approx(cam.K[0, 0], rel=1e-6)
    assert np.allclose(got.position, position, atol=1e-4)
    pts = np.array([[1.0, 2.0, 0.0], [-3.0, 4.0, 1.5], [5.0, -2.0, 3.0]])
    assert np.allclose(got.project(pts), cam.project(pts)[0], atol=1e-6)  # heights project right too
    mirrored = PinholeCamera.from_plane(plane_of(cam, mirror=True), W, H)  # y south instead of north
    assert mirrored is not None and mirrored.position[2] == pytest.approx(position[2], rel=1e-6)


def test_a_homography_no_pinhole_camera_makes_gives_none() -> None:
    """Ground x in metres and y in feet (a scale error in the survey): not a camera with square pixels."""
    cam = pole()
    plane = plane_of(cam)
    stretched = GroundPlane.fit(plane.to_image([[0, 0], [8, 0], [8, 8], [0, 8]]),
                                [[0, 0], [8, 0], [8, 8 * 3.28], [0, 8 * 3.28]])
    assert PinholeCamera.from_plane(stretched, W, H) is None


def test_footprint_centres_undo_the_slide_of_the_bottom_centre() -> None:
    cam = pole()
    plane = plane_of(cam)
    camera = PinholeCamera.from_plane(plane, W, H)
    assert camera is not None
    centres = np.array([[-15.0, 1.75], [-2.0, 1.75], [4.0, -6.0], [1.75, 12.0]])
    headings = np.array([0.0, np.pi, -np.pi / 2, np.pi / 4])
    boxes = np.array([box_of(cam, c, h, CAR) for c, h in zip(centres, headings)])
    anchors = plane.to_ground(np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]])
    assert np.abs(anchors - centres).max() > 0.5  # the bottom-centre is off the footprint's centre
    got = camera.footprint_centres(plane, anchors, headings, [CAR] * 4)
    assert np.abs(got - centres).max() < 0.01


def drive_past(sizes: dict[int, tuple[float, float, float]], frame_size: tuple[int, int] | None) -> float:
    """A car passing the camera at 30 km/h on the west arm; its speed at x = -6 m, from its boxes."""
    cam = pole()
    kin = Kinematics(plane_of(cam), window_s=2.0, sizes=sizes)
    v = 30 / 3.6
    for k in range(40):
        t = k / 10
        box = box_of(cam, np.array([v * t - 22.0, 1.75]), 0.0, CAR)
        tracks = Tracks(np.array([1]), box[None].astype(np.float32), np.ones(1, np.float32), np.array([1]),
                        np.array([0]), np.zeros((1, 2), np.float32))
        kin.update(tracks, t, frame_size=frame_size)
    speed = kin.speed_at(1, (22.0 - 6.0) / v)
    assert speed is not None
    return speed


def test_speed_of_a_passing_car_is_that_of_its_footprint() -> None:
    plain = drive_past({}, (W, H))
    fitted = drive_past({1: CAR}, (W, H))
    assert abs(plain / 30 - 1) > 0.02        # the bottom-centre slides back along the car as it passes
    assert fitted == pytest.approx(30, rel=0.005)
    assert drive_past({1: CAR}, None) == plain  # without the frame size, no camera: the plain anchor


def test_snapshot_says_what_camera_the_calibration_implies(tmp_path: Path) -> None:
    """The line `edge-agent snapshot` prints after the calibration's error, from four clicked points."""
    cam = pole()
    ground = np.array([[-6.0, -4.0], [6.0, -4.0], [7.0, 9.0], [-5.0, 8.0]])
    image, _ = cam.project(np.c_[ground, np.zeros(len(ground))])

    def camera_line(scale_y: float) -> str | None:
        points = [{"image": [round(float(u), 2), round(float(v), 2)], "ground": [float(x), float(y) * scale_y]}
                  for (u, v), (x, y) in zip(image, ground)]
        (tmp_path / "m.onnx").write_bytes(b"")
        (tmp_path / "v.mp4").write_bytes(b"")
        doc = {"model": {"path": "m.onnx"},
               "cameras": [{"id": "c", "source": "v.mp4", "calibration": {"points": points}}]}
        return camera_summary(parse_config(yaml.safe_dump(doc), tmp_path / "site.yaml").cameras[0], W, H)

    assert camera_line(1.0) == ("camera: 10.0 m above the road at ground (-13.0, -27.0) m, horizontal field of "
                                "view 66 deg, as the calibration implies; speeds are fitted to vehicles' footprints")
    assert "no pinhole camera" in str(camera_line(3.28))  # y surveyed in feet, x in metres
