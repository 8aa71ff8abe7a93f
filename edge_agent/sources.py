"""Camera or file -> Frame, with timestamps, an fps cap and reconnects.

File sources are read frame by frame; a frame's time is the configured start
time plus its index divided by the container's frame rate, so a replay gives
the same timestamps every run. Live sources (RTSP, HTTP, USB) are read by a
background thread that keeps only the newest frame: the pipeline never works
through a backlog, and every frame overwritten before it was taken is counted
as dropped. A live source that fails to open or stops delivering is reopened
with exponential backoff and jitter while the other cameras go on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.config import CameraConfig, redact
from edge_agent.types import Frame

log = logging.getLogger(__name__)
DEFAULT_FPS = 25.0


class SourceError(RuntimeError):
    """A video source cannot be opened or read."""


@dataclass
class SourceCounters:
    read: int = 0
    dropped: int = 0
    reconnects: int = 0


class _FpsCap:
    """Keeps frames at most ``fps`` per second of source time."""

    def __init__(self, fps: float | None):
        self.period = 1.0 / fps if fps else 0.0
        self.next_due: float | None = None

    def keep(self, ts: float) -> bool:
        if not self.period:
            return True
        if self.next_due is not None and ts < self.next_due - 1e-6:
            return False
        # schedule from the ideal grid so that, e.g., 25 fps capped to 10 keeps 10/s, not 8.33/s
        self.next_due = ts + self.period if self.next_due is None else max(self.next_due + self.period, ts)
        return True


class VideoSource:
    """Frames of one camera.

    Args:
        cam: camera configuration (source, fps cap, reconnect backoff and stall timeout).
        stop: set to end :meth:`frames` early.
        decode_threads: FFmpeg's decoding threads for this camera (``performance.decode_threads``;
            0: OpenCV's default, one per core).
    """

    def __init__(self, cam: CameraConfig, stop: threading.Event, decode_threads: int = 1):
        self.cam = cam
        self.stop = stop
        self.decode_threads = decode_threads
        self.retry_min_s, self.retry_max_s, self.stall_s = cam.reconnect_min_s, cam.reconnect_max_s, cam.stall_s
        self.counters = SourceCounters()
        self.state = "connecting"   # connecting | streaming | reconnecting | ended | failed
        self.fps = DEFAULT_FPS
        self.last_ts: float | None = None

    # -------------------------------------------------------------- files
    def _open_file(self) -> cv2.VideoCapture:
        cap = open_capture(str(self.cam.source), self.decode_threads)
        if not cap.isOpened():
            self.state = "failed"
            raise SourceError(f"camera {self.cam.id}: cannot open video file {self.cam.source}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0 or fps > 1000:
            log.warning("camera %s: %s declares no frame rate; assuming %.0f fps", self.cam.id, self.cam.source,
                        DEFAULT_FPS)
            fps = DEFAULT_FPS
        self.fps = float(fps)
        return cap

    def _file_frames(self) -> Iterator[tuple[Frame | None, int]]:
        t0 = self.cam.clock_start.timestamp()
        cap_fps = _FpsCap(self.cam.fps_cap)
        wall0 = time.monotonic()
        dropped = 0
        idx = -1      # frame index since the start, over all loops: the video clock
        while not self.stop.is_set():
            cap = self._open_file()
            self.state = "streaming"
            in_pass = 0
            try:
                while not self.stop.is_set():
                    ok, image = cap.read()
                    if not ok:
                        break
                    idx += 1
                    in_pass += 1
                    self.counters.read += 1
                    rel = idx / self.fps
                    ts = t0 + rel
                    if self.cam.realtime:
                        delay = wall0 + rel - time.monotonic()
                        if delay > 0 and self.stop.wait(delay):
                            break
                    if not cap_fps.keep(rel) or not _valid(image):
                        dropped += 1
                        self.counters.dropped += 1
                        continue
                    self.last_ts = ts
                    yield Frame(self.cam.id, idx, ts, image), dropped
                    dropped = 0
            finally:
                cap.release()
            if in_pass == 0:
                self.state = "failed"
                raise SourceError(f"camera {self.cam.id}: {self.cam.source} has no decodable frame")
            if not self.cam.loop or self.stop.is_set():
                break
        self.state = "ended" if not self.stop.is_set() else self.state

    # -------------------------------------------------------------- live
    def _live_frames(self) -> Iterator[tuple[Frame | None, int]]:
        reader = _LatestFrameReader(self)
        reader.start()
        cap_fps = _FpsCap(self.cam.fps_cap)
        dropped = 0
        try:
            while not self.stop.is_set():
                got = reader.take(timeout=0.5)
                if got is None:
                    yield None, 0  # heartbeat: lets the pipeline close intervals during an outage
                    continue
                seq, ts, image, overwritten = got
                dropped += overwritten
                self.counters.dropped += overwritten
                if not cap_fps.keep(ts):
                    dropped += 1
                    self.counters.dropped += 1
                    continue
                self.last_ts = ts
                yield Frame(self.cam.id, seq, ts, image), dropped
                dropped = 0
        finally:
            reader.stop_event.set()
            reader.join(timeout=5)

    def frames(self) -> Iterator[tuple[Frame | None, int]]:
        """Yield ``(frame, frames dropped since the previous frame)`` until the source ends or stop.

        Live sources also yield ``(None, 0)`` about twice a second while no frame arrives.
        """
        return self._file_frames() if self.cam.is_file else self._live_frames()

    @property
    def is_live(self) -> bool:
        return not self.cam.is_file

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnect ``attempt`` (1-based): doubling, capped, with ±25 % jitter."""
        base = min(self.retry_max_s, self.retry_min_s * 2 ** (attempt - 1))
        return float(base * random.uniform(0.75, 1.25))


def _threads(n: int) -> list[int]:
    """Capture parameters that set FFmpeg's decoding threads (none for 0: OpenCV's default, one per core).

    One thread per camera by default: on a box whose cores inference keeps busy, FFmpeg's own
    threads only add hand-overs between them (``scripts/bench_pipeline.py``; README, Performance).
    """
    return [cv2.CAP_PROP_N_THREADS, n] if n else []


def open_capture(source: str, decode_threads: int = 1, params: list[int] | None = None,
                 backend: int = cv2.CAP_ANY) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` with ``decode_threads`` FFmpeg threads (0: OpenCV's default) and ``params``;
    a backend that refuses them opens the source without them."""
    params = [*(params or []), *_threads(decode_threads)]
    if params:
        cap = cv2.VideoCapture(source, backend, params)
        if cap.isOpened():
            return cap
        cap.release()
    return cv2.VideoCapture(source, backend)


def _open_live(source: str | int, timeout_s: float, decode_threads: int = 1) -> cv2.VideoCapture:
    """Open a live source with open/read timeouts, so a dead server cannot hang the reader."""
    if isinstance(source, int):
        return cv2.VideoCapture(source)
    ms = int(timeout_s * 1000)
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                     cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms, *_threads(decode_threads)])


def _valid(image: npt.NDArray[np.uint8] | None) -> bool:
    return image is not None and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


class _LatestFrameReader(threading.Thread):
    """Reads a live source as fast as it delivers, keeping only the newest frame."""

    def __init__(self, src: VideoSource):
        super().__init__(name=f"capture-{src.cam.id}", daemon=True)
        self.src = src
        self.stop_event = threading.Event()
        self.cond = threading.Condition()
        self.latest: tuple[int, float, npt.NDArray[np.uint8]] | None = None
        self.overwritten = 0
        self.seq = -1

    def _stopped(self) -> bool:
        return self.stop_event.is_set() or self.src.stop.is_set()

    def run(self) -> None:
        cam = self.src.cam
        attempt = 0
        while not self._stopped():
            cap = _open_live(cam.source, self.src.stall_s, self.src.decode_threads)
            if not cap.isOpened():
                self.src.state = "reconnecting"
                attempt += 1
                wait = self.src.backoff(attempt)
                log.warning("camera %s: cannot open %s; retry %d in %.1f s", cam.id, redact(cam.source), attempt,
                            wait)
                if self.stop_event.wait(wait):
                    break
                continue
            if attempt or self.seq >= 0:
                self.src.counters.reconnects += 1
                log.info("camera %s: %s open again after %d failed attempt(s)", cam.id, redact(cam.source), attempt)
            self.src.state = "streaming"
            attempt = 0
            last_frame = time.monotonic()
            while not self._stopped():
                ok, image = cap.read()
                now = time.time()
                if not ok or not _valid(image):
                    if time.monotonic() - last_frame > self.src.stall_s or not ok:
                        log.warning("camera %s: stream stopped delivering frames; reconnecting", cam.id)
                        break
                    continue
                last_frame = time.monotonic()
                self.seq += 1
                self.src.counters.read += 1
                with self.cond:
                    if self.latest is not None:
                        self.overwritten += 1
                    self.latest = (self.seq, now, image)
                    self.cond.notify()
            cap.release()
            if not self._stopped():
                self.src.state = "reconnecting"
                attempt += 1
                if self.stop_event.wait(self.src.backoff(attempt)):
                    break

    def take(self, timeout: float) -> tuple[int, float, npt.NDArray[np.uint8], int] | None:
        with self.cond:
            if self.latest is None:
                self.cond.wait(timeout)
            if self.latest is None:
                return None
            seq, ts, image = self.latest
            overwritten, self.overwritten = self.overwritten, 0
            self.latest = None
            return seq, ts, image, overwritten
