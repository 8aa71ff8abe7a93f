#!/usr/bin/env python3
"""ONNX Runtime alone: one session with every core against ``--streams`` sessions side by side.

    .venv/bin/python scripts/bench_streams.py [--model M] [--streams 2] [--cycles 8] [--chunk 24]

One process, pre-letterboxed vtest.avi frames, the settings taking turns on chunks of frames
(so a change of load on a shared machine moves all of them):

1. ``defaults``: ONNX Runtime's default session options (intra-op threads = cores, spinning);
2. ``1 x N``: one session, N = usable cores intra-op threads, no spinning (``performance.streams: 1``);
3. ``S x N/S``: S sessions of N/S threads each, no spinning, each inferring every S-th frame in its
   own thread (``performance.streams: S``, the agent's default S = 2 on the CPU).

Prints frames/s of each and the ratios. The whole agent against these is ``bench_pipeline.py``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def main() -> int:
    import cv2
    import onnxruntime as ort

    from edge_agent.detection import Detector
    from edge_agent.scheduler import usable_cores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolov8n_int8.onnx"))
    ap.add_argument("--video", default=str(SHARED / "data" / "vtest.avi"))
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--cycles", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=24)
    a = ap.parse_args()
    cores = usable_cores()
    det = Detector(a.model, device="cpu")
    cap = cv2.VideoCapture(a.video)
    blobs = []
    while len(blobs) < a.chunk:
        ok, img = cap.read()
        if not ok:
            raise SystemExit(f"{a.video}: fewer than {a.chunk} frames")
        blobs.append(det.preprocess(img)[0])
    name = det.input_name

    def session(threads: int | None, spin: bool | None) -> ort.InferenceSession:
        o = ort.SessionOptions()
        if threads:
            o.intra_op_num_threads = threads
            o.inter_op_num_threads = 1
        if spin is not None:
            o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        return ort.InferenceSession(a.model, o, providers=["CPUExecutionProvider"])

    defaults, single = session(None, None), session(cores, False)
    many = [session(max(1, cores // a.streams), False) for _ in range(a.streams)]

    def serial(s: ort.InferenceSession) -> None:
        for b in blobs:
            s.run(None, {name: b})

    def side_by_side() -> None:
        def part(s: ort.InferenceSession, i: int) -> None:
            for b in blobs[i::a.streams]:
                s.run(None, {name: b})
        threads = [threading.Thread(target=part, args=(s, i)) for i, s in enumerate(many)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    runs = {"defaults": lambda: serial(defaults), f"1 x {cores}": lambda: serial(single),
            f"{a.streams} x {max(1, cores // a.streams)}": side_by_side}
    for run in runs.values():  # warm-up
        run()
    wall = dict.fromkeys(runs, 0.0)
    turns: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(a.cycles):
        for k, run in runs.items():
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            wall[k] += dt
            turns[k].append(len(blobs) / dt)
    fps = {k: a.cycles * len(blobs) / w for k, w in wall.items()}
    print(f"{cores} cores, ONNX Runtime {ort.__version__}, {Path(a.model).name}, {a.cycles} turns of {a.chunk} frames")
    for k, f in fps.items():
        print(f"{k:10s} {f:6.2f} frames/s (turns {min(turns[k]):.1f}-{max(turns[k]):.1f})")
    keys = list(fps)
    print(f"{keys[2]} / {keys[1]} = {fps[keys[2]] / fps[keys[1]]:.3f}; {keys[2]} / defaults = "
          f"{fps[keys[2]] / fps['defaults']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
