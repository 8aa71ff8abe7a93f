#!/usr/bin/env python3
"""Render a seeded synthetic junction clip with its ground truth (see edge_agent.synth.clip).

    python scripts/render_synthetic.py                       # seed 1, 60 s at 15 fps into out/synthetic
    python scripts/render_synthetic.py --seed 7 --seconds 20 --out /tmp/clip7
    python scripts/render_synthetic.py --dataset /tmp/synth-data   # YOLO training stills instead

The clip folder gets clip.avi, gt.txt (MOTChallenge), trajectories.csv, crossings.csv, tracks.csv,
truth.json and agent.yaml; run the agent on it with ``edge-agent run -c OUT/agent.yaml``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from edge_agent.synth import render_clip
    from edge_agent.synth.dataset import render_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "synthetic")
    ap.add_argument("--model", type=Path, default=None, help="model written into agent.yaml")
    ap.add_argument("--dataset", type=Path, default=None,
                    help="write YOLO stills here instead (train: seeds 1-60, val: 9001-9003)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.dataset is not None:
        print("val:", render_dataset(args.dataset, range(9001, 9004), "val", stills_per_scene=50, every=4, fps=5,
                                     demo_camera_share=0.67))
        print("train:", render_dataset(args.dataset, range(1, 61), "train", stills_per_scene=40, every=3, fps=4))
        print(f"{time.perf_counter() - t0:.1f} s")
        return 0
    truth = render_clip(args.seed, args.seconds, args.fps, args.out, args.width, args.height, model_path=args.model)
    counts = truth.line_counts()
    print(f"{args.out}: {truth.n_frames} frames {truth.width}x{truth.height}, {len(truth.tracks)} tracks, "
          f"{len(truth.crossings)} crossings, rendered at {truth.render_fps:.0f} frames/s "
          f"({time.perf_counter() - t0:.1f} s in all)")
    for (line, direction, cls), n in sorted(counts.items()):
        print(f"  line {line} {direction:3s} {cls:10s} {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
