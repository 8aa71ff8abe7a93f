"""Print the analytics' errors against exact ground truth (the figures quoted in README).

Runs the simulated signalised approach of tests/analytics_truth.py (ten minutes,
two lanes, a known camera homography, 0.5 px of noise) through the agent's
analytics and aggregators, as tests/test_analytics_truth.py does, and prints
the measured errors instead of asserting bounds:

    .venv/bin/python scripts/analytics_accuracy.py [--seed 3] [--minutes 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from analytics_truth import simulate  # noqa: E402
from test_analytics_truth import run_analytics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    truth = simulate(duration_s=60 * args.minutes, seed=args.seed)
    records, crossings = run_analytics(truth, Path(tempfile.mkdtemp()))

    true_speed = {(vid, line): v for vid, line, _, _, v in truth.crossings}
    err = [abs(e.speed_kmh - true_speed[(e.track_id, e.line_id)]) / true_speed[(e.track_id, e.line_id)]
           for e in crossings if e.line_id.startswith("count_") and e.speed_kmh is not None]
    counted = sum(1 for e in crossings if e.line_id.startswith("count_"))
    print(f"vehicles {len(truth.crossings)} (counted {counted}), movements {len(truth.movements)}")
    print(f"speed at the line: mean absolute error {100 * np.mean(err):.2f} %, worst {100 * np.max(err):.2f} %")
    p85 = []
    for r in records:
        t0 = r.start.timestamp()
        for lc in r.lines:
            if r.seconds == 300 and lc.line_id.startswith("count_") and lc.speeds is not None:
                true = [v for _, line, _, t, v in truth.crossings if line == lc.line_id and t0 <= t < t0 + 300]
                p85.append(abs(lc.speeds.p85 - float(np.percentile(true, 85))))
    print(f"p85 per 5-minute interval: worst error {max(p85):.2f} km/h")
    index = {ts: i for i, ts in enumerate(truth.frame_ts)}
    times: dict[str, list[float]] = {}
    for _, line, _, t, _ in sorted(truth.crossings, key=lambda c: c[3]):
        times.setdefault(line.removeprefix("count_"), []).append(t)
    occ, hw = [], []
    for r in records:
        if r.seconds != 60:
            continue
        t0 = r.start.timestamp()
        frames = [i for ts, i in index.items() if t0 <= ts < t0 + 60]
        for z in r.zones:
            inside = np.array(truth.zone_vehicles[z.zone_id])[frames]
            occ.append(abs((z.occupancy_pct or 0.0) - 100 * float(np.mean(inside > 0))))
        for lane in r.lanes:
            ts = times[lane.lane_id]
            gaps = [b - a for a, b in zip(ts, ts[1:]) if t0 <= b < t0 + 60]
            if gaps and lane.headway_s[1] is not None and lane.headway_s[2] is not None:
                hw += [abs(lane.headway_s[1] - np.mean(gaps)) / np.mean(gaps),
                       abs(lane.headway_s[2] - min(gaps)) / min(gaps)]
    print(f"occupancy per minute: worst error {max(occ):.2f} points; headways (mean, min) per minute: "
          f"worst error {100 * max(hw):.2f} %")


if __name__ == "__main__":
    main()
