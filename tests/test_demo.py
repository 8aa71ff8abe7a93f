"""`edge-agent demo`: the whole system on a synthetic junction, as a newcomer runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2

LANES = {"N-in", "E-in", "S-in", "W-in"}


def test_demo_runs_agent_and_controller_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "demo", "--seconds", "20", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.count("  stats  junction") == 2  # two 10-second intervals
    assert "  signal plan junction: cycle" in out and "  lighting " in out and "  services " in out
    m = re.search(r"(\d+) crossings counted \(the generator's ground truth: (\d+)\)", out)
    assert m, out
    counted, truth = int(m.group(1)), int(m.group(2))
    assert truth > 0 and abs(counted - truth) <= max(2, truth // 10)

    # lane zones: queues in every statistics message, printed with it
    assert out.count("         queues (longest, vehicles / metres from the stop line)  N-in ") == 2, out
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 2
    for doc in stats:
        zones = {z["zone_id"]: z for z in doc["zones"]}
        assert set(zones) == {"N-queue", "E-queue", "S-queue", "W-queue"}
        assert {z["lane"] for z in zones.values()} == LANES
        for z in zones.values():
            assert isinstance(z["queue_veh"]["max"], int) and z["queue_m"]["max"] >= 0  # calibrated, stop line
            assert z["density_veh_km"] is not None
        assert {ln["lane_id"] for ln in doc["lanes"]} == LANES
        assert all(isinstance(ln["queue_veh"]["max"], int) for ln in doc["lanes"])
    assert any(ln["queue_veh"]["max"] > 0 for doc in stats for ln in doc["lanes"])  # vehicles wait at the red

    # presence-driven signal control: the controller took the camera's presence and changed phase on it
    m = re.search(r"the controller took (\d+) presence messages \((\d+) published\), (\d+) phase changes; "
                  r"(\d+) messages refused", out)
    assert m, out
    taken, published, changes, refused = map(int, m.groups())
    assert taken >= 10 and taken == published and refused == 0  # one a second of a 20 s clip
    phases = re.findall(r"  signal phase junction: (\S+) -> (\S+) green \(([^)]*)\); lanes in view: (.*)", out)
    assert len(phases) == changes >= 1, out
    assert any("stale" not in reason for _, _, reason, _ in phases), phases  # decided on fresh presence
    assert all(a != b for a, b, _, _ in phases) and all(lanes.startswith("N-in ") for *_, lanes in phases)

    video = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 300
    chart = cv2.imread(str(tmp_path / "counts.png"))
    assert chart is not None and chart.shape == (420, 900, 3)
