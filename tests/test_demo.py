"""`edge-agent demo`: the whole system on a synthetic junction, as a newcomer runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2


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
    video = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 300
    chart = cv2.imread(str(tmp_path / "counts.png"))
    assert chart is not None and chart.shape == (420, 900, 3)
