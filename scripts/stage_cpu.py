#!/usr/bin/env python3
"""CPU cost of the agent's work around inference, per frame, measured alone on one thread.

    .venv/bin/python scripts/stage_cpu.py [--config configs/vtest.yaml] [--model M] [--frames 300] [--profile]

``bench_pipeline.py`` reports what the agent's threads cost while ONNX Runtime keeps the cores
busy. This script measures the same work with nothing else running, so the two can be compared:
the decode of the video, ``Detector.preprocess`` (letterbox and normalisation), and the camera
thread's part, from output decoding to the interval record (``Detector.postprocess`` and
``CameraPipeline._after_detect``: tracking, analytics, aggregation, message building; the
publisher is a stand-in that only serialises). Inference outputs are computed beforehand and are
not timed. ``--profile`` prints the camera part's cProfile by own time.

It also runs the same work frame by frame, as the camera thread does: decode, preprocess, the
frame's inference (not timed), then postprocess to interval record. The difference from the
sum of the stages is what the inference between them costs the rest in caches.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class SerialisingPublisher:
    """Builds the payload as the spool would and sends nothing."""

    def publish(self, message: Any) -> Any:
        from edge_agent.spool import Outgoing

        return Outgoing(0, 0, message.topic, json.dumps(message.doc).encode(), message.qos, message.retain)

    def publish_latest(self, topic: str, doc: Any) -> None:
        json.dumps(doc)

    def close(self, *args: Any, **kwargs: Any) -> None:
        return None


def frame_by_frame(cam: Any, cfg: Any, det: Any, t0: float, n: int) -> float:
    """CPU ms per frame of the camera thread's work done one frame at a time, its inference untimed."""
    from edge_agent.pipeline import CameraPipeline
    from edge_agent.sources import open_capture
    from edge_agent.types import Frame

    pipe = CameraPipeline(cam, cfg, det, SerialisingPublisher())
    cap = open_capture(str(cam.source))  # one decoding thread, as the agent
    spent = 0.0
    for k in range(n):
        c0 = time.thread_time()
        img = cap.read()[1]
        tensor, lb = det.preprocess(img)
        c1 = time.thread_time()
        out = det.infer(tensor)
        c2 = time.thread_time()
        pipe._after_detect(Frame(cam.id, k, t0 + k / 10, img), det.postprocess(out, lb, img.shape), 0.0, 0)
        spent += time.thread_time() - c2 + c1 - c0
    cap.release()
    return 1000 * spent / n


def main() -> int:
    import cv2

    from edge_agent.config import load_config
    from edge_agent.detection import Detector
    from edge_agent.pipeline import CameraPipeline
    from edge_agent.sources import open_capture
    from edge_agent.types import Frame

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "vtest.yaml")
    ap.add_argument("--model", type=Path, help="instead of the configuration's model (all its classes kept)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()

    cfg = load_config(a.config)
    cam, m = cfg.cameras[0], cfg.model
    det = Detector(a.model or m.path, m.confidence, m.iou, None if a.model else m.classes, m.names, m.input_size,
                   "cpu", 1, 1, False, rect=m.rect)
    cv2.setNumThreads(1)
    cap = open_capture(str(cam.source))  # one decoding thread, as the agent
    images: list[npt.NDArray[np.uint8]] = []
    while len(images) < a.frames:
        ok, img = cap.read()
        if not ok:
            break
        images.append(np.asarray(img, np.uint8))
    cap.release()
    prepared = [det.preprocess(img) for img in images]
    outputs = [det.infer(tensor) for tensor, _ in prepared]
    t0 = cam.start_time.timestamp() if cam.start_time else 0.0

    def camera_work() -> None:
        pipe = CameraPipeline(cam, cfg, det, SerialisingPublisher())
        for k, (img, (_, lb), out) in enumerate(zip(images, prepared, outputs, strict=True)):
            detections = det.postprocess(out, lb, img.shape)
            pipe._after_detect(Frame(cam.id, k, t0 + k / 10, img), detections, 0.0, 0)

    camera_work()  # warm
    c0 = time.thread_time()
    cap = open_capture(str(cam.source))  # one decoding thread, as the agent
    for _ in images:
        cap.read()
    c1 = time.thread_time()
    for img in images:
        det.preprocess(img)
    c2 = time.thread_time()
    camera_work()
    c3 = time.thread_time()
    n = len(images)
    h, w = det.input_shape_for(images[0].shape[:2])
    video = Path(str(cam.source)).name
    print(f"{det.path.name}, input {h}x{w}, {n} frames of {video}, one thread, nothing else running")
    print(f"CPU ms per frame: decode {1000 * (c1 - c0) / n:.2f}, preprocess {1000 * (c2 - c1) / n:.2f}, "
          f"postprocess to interval record {1000 * (c3 - c2) / n:.2f}; together {1000 * (c3 - c0) / n:.2f}")
    print(f"frame by frame, each frame's inference between its preprocess and postprocess (not timed): "
          f"{frame_by_frame(cam, cfg, det, t0, n):.2f}")
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
        camera_work()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
