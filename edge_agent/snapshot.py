"""``edge-agent snapshot``: one frame of a camera with its setup drawn on it, as a PNG.

    edge-agent snapshot -c site.yaml --camera main-st-north -o setup.png [--frame N]

For checking a configuration on site: the counting lines with their "in"
arrows, the zones with lanes and travel directions, and with a calibration the
metre grid on the road and the calibration points with their errors (see
:mod:`edge_agent.overlay`). Nothing is published; the model is not needed.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.config import CameraConfig, load_config, redact

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

LIVE_SKIP = 5          # frames of a live stream skipped by default: the first ones may be partial
DEFAULT_TIMEOUT_S = 20.0


class SnapshotError(RuntimeError):
    """The snapshot cannot be made (unreadable source, bad frame index, unwritable output)."""

    exit_code = 1


class UnknownCamera(SnapshotError):
    """The camera id is not in the configuration (the message lists the ids that are)."""

    exit_code = 2


def find_camera(cameras: list[CameraConfig], camera_id: str | None, config: Path | str) -> CameraConfig:
    """The camera ``camera_id`` (or the only one when ``None``); SnapshotError listing the known ids."""
    known = ", ".join(c.id for c in cameras)
    if camera_id is None:
        if len(cameras) == 1:
            return cameras[0]
        raise UnknownCamera(f"{config} has {len(cameras)} cameras; pick one with --camera: {known}")
    for cam in cameras:
        if cam.id == camera_id:
            return cam
    raise UnknownCamera(f"camera {camera_id!r} is not in {config}; its cameras: {known}")


def read_file_frame(cam: CameraConfig, index: int) -> npt.NDArray[np.uint8]:
    """Frame ``index`` (0-based) of a file source."""
    import cv2

    cap = cv2.VideoCapture(str(cam.source))
    if not cap.isOpened():
        raise SnapshotError(f"camera {cam.id}: cannot open video file {cam.source}")
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count > 0 and index >= count:
            raise SnapshotError(f"camera {cam.id}: --frame {index} is past the end of {cam.source} "
                                f"({count} frames, 0 to {count - 1})")
        if index > 300:  # far in: seek (keyframe-exact for the usual codecs), else decode the way there
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        else:
            for i in range(index):
                if not cap.grab():
                    raise SnapshotError(f"camera {cam.id}: {cam.source} ends after {i} frames; "
                                        f"--frame {index} does not exist")
        ok, image = cap.read()
    finally:
        cap.release()
    if not ok or image is None or image.ndim != 3 or image.shape[2] != 3:
        raise SnapshotError(f"camera {cam.id}: cannot decode frame {index} of {cam.source}")
    return image  # type: ignore[no-any-return]


def read_live_frame(cam: CameraConfig, skip: int, timeout_s: float) -> npt.NDArray[np.uint8]:
    """A frame of a live source (after ``skip`` frames), read as the agent reads it (timeouts, reconnects)."""
    from edge_agent.sources import VideoSource

    stop = threading.Event()
    source = VideoSource(cam, stop)
    deadline = time.monotonic() + timeout_s
    frames = source.frames()
    try:
        for frame, _ in frames:
            if frame is not None and frame.seq >= skip:
                return frame.image
            if time.monotonic() > deadline:
                break
    finally:
        stop.set()
        frames.close()
    raise SnapshotError(f"camera {cam.id}: no frame from {redact(cam.source)} within {timeout_s:g} s "
                        f"(state: {source.state})")


def grab(cam: CameraConfig, frame: int | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> npt.NDArray[np.uint8]:
    """The frame to draw on: frame ``frame`` of a file (default 0), or a live stream's ``frame``-th."""
    if frame is not None and frame < 0:
        raise SnapshotError(f"--frame must be >= 0, got {frame}")
    if cam.is_file:
        return read_file_frame(cam, frame or 0)
    return read_live_frame(cam, LIVE_SKIP if frame is None else frame, timeout_s)


def calibration_summary(cam: CameraConfig) -> str | None:
    """``calibration: 5 points, reprojection error rms 0.05 m, max 0.08 m (point 4)``, or None."""
    if cam.calibration is None:
        return None
    plane = cam.calibration.plane()
    worst = int(plane.errors_m.argmax())
    return (f"calibration: {len(cam.calibration.points)} points, reprojection error rms {plane.rms_error_m:.3f} m, "
            f"max {float(plane.errors_m[worst]):.3f} m (point {worst})")


def camera_summary(cam: CameraConfig, width: int, height: int) -> str | None:
    """The camera that the calibration implies for frames of ``width`` x ``height``, or None without one.

    With one, speeds are fitted to vehicles' road footprints (``PinholeCamera``); without, to their
    boxes' bottom-centres.
    """
    if cam.calibration is None:
        return None
    from edge_agent.geometry import PinholeCamera

    pin = PinholeCamera.from_plane(cam.calibration.plane(), width, height)
    if pin is None:
        return ("camera: no pinhole camera (square pixels, principal point at the centre) fits the calibration, "
                "so speeds use the boxes' bottom-centres; check the ground points' scale in x and y")
    x, y, z = (float(v) for v in pin.position)
    hfov = 2 * math.degrees(math.atan(width / 2 / pin.focal_px))
    return (f"camera: {z:.1f} m above the road at ground ({x:.1f}, {y:.1f}) m, horizontal field of view "
            f"{hfov:.0f} deg, as the calibration implies; speeds are fitted to vehicles' footprints")


def snapshot(config: Path | str, camera_id: str | None, out: Path | str, frame: int | None = None,
             grid: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[CameraConfig, tuple[int, int]]:
    """Write the PNG; return the camera and the image size (width, height).

    Raises:
        ConfigError: the configuration is invalid.
        SnapshotError: unknown camera, unreadable source or frame, unwritable output.
    """
    import cv2

    from edge_agent.overlay import draw_setup

    cfg = load_config(config, check_files=False)  # the model is not needed for a snapshot
    cam = find_camera(cfg.cameras, camera_id, config)
    if cam.is_file and not Path(str(cam.source)).is_file():
        raise SnapshotError(f"camera {cam.id}: video file not found: {cam.source}")
    image = grab(cam, frame, timeout_s)
    drawn = draw_setup(image, cam, grid=grid)
    out = Path(out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    ext = out.suffix.lower() if out.suffix.lower() in (".png", ".jpg", ".jpeg") else ".png"
    ok, data = cv2.imencode(ext, drawn)
    if not ok:
        raise SnapshotError(f"cannot encode the image as {ext}")
    try:
        out.write_bytes(data.tobytes())
    except OSError as exc:
        raise SnapshotError(f"cannot write {out}: {exc.strerror}") from None
    return cam, (drawn.shape[1], drawn.shape[0])


def cmd_snapshot(args: argparse.Namespace) -> int:
    try:
        cam, (w, h) = snapshot(args.config, args.camera, args.output, args.frame, not args.no_grid, args.timeout)
    except SnapshotError as exc:
        print(f"edge-agent snapshot: {exc}", file=sys.stderr)
        return exc.exit_code
    which = f"frame {args.frame if args.frame is not None else 0}" if cam.is_file else "live frame"
    print(f"camera {cam.id}: {which}, {w}x{h}, {len(cam.lines)} line(s), {len(cam.zones)} zone(s) -> {args.output}")
    summary = calibration_summary(cam)
    print(summary if summary else "calibration: none (no ground grid; speeds and queues in metres need one)")
    camera = camera_summary(cam, w, h)
    if camera:
        print(camera)
    return 0


def add_subparser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``snapshot`` on the ``edge-agent`` command."""
    p = sub.add_parser("snapshot", help="draw a camera's lines, zones and calibration grid on one of its frames",
                       description="Write one frame of a camera with its setup drawn on it: counting lines with "
                                   "their 'in' arrows, zones, lanes, travel directions and, with a calibration, "
                                   "the ground grid in metres and the calibration points with their errors.")
    p.add_argument("-c", "--config", required=True, type=Path, help="YAML configuration file")
    p.add_argument("--camera", help="camera id (may be left out when the file has one camera)")
    p.add_argument("-o", "--output", required=True, type=Path, help="image to write (.png, or .jpg)")
    p.add_argument("--frame", type=int, help=f"file: frame index (default 0); live: take the frame after "
                                             f"skipping this many (default {LIVE_SKIP})")
    p.add_argument("--no-grid", action="store_true", help="leave out the calibration's ground grid")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"live sources: give up after this many seconds (default {DEFAULT_TIMEOUT_S:g})")
    p.set_defaults(func=cmd_snapshot)
