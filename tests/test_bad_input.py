"""Bad input never crashes the agent: one clear error naming the problem, and the rest goes on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent_support import Subscriber, agent, logged_records, make_clip, write_config
from conftest import Broker
from edge_agent.types import Frame


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, timeout=120)


def test_corrupt_model_is_refused_at_start(tmp_path: Path, mosquitto: Broker, vtest_video: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"PK\x03\x04 this is not an ONNX graph" * 50)
    proc = run_cli("run", "-c", str(write_config(tmp_path, mosquitto, junk, vtest_video)))
    assert proc.returncode == 2
    assert f"model.path: {junk}: not a loadable ONNX model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_corrupt_video_stops_only_its_camera(tmp_path: Path, mosquitto: Broker, coco_model: Path,
                                               vtest_video: Path) -> None:
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(range(256)) * 40)
    clip = make_clip(vtest_video, tmp_path / "clip.avi", 40)
    cfg = write_config(tmp_path, mosquitto, coco_model, clip)
    doc = yaml.safe_load(cfg.read_text())
    doc["cameras"].append({"id": "broken", "source": str(bad), "lines": []})
    cfg.write_text(yaml.safe_dump(doc))
    sub = Subscriber(mosquitto)
    proc = agent(cfg)
    out, _ = proc.communicate(timeout=300)
    sub.close()
    assert proc.returncode == 1  # a camera failed: the exit status says so
    assert f"camera broken: cannot open video file {bad}" in out or f"camera broken: {bad} has no decodable frame" in out
    assert "Traceback" not in out
    good = [d for d in logged_records(out) if d["camera_id"] == "campus"]
    assert good and sum(d["frames"]["processed"] for d in good) == 40
    assert sub.stats("campus") == good


def test_frames_of_the_wrong_shape_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"camera 'c1' frame 7: expected a non-empty \(h, w, 3\) uint8 image, "
                                         r"got shape \(480, 640\) dtype uint8"):
        Frame("c1", 7, 0.0, np.zeros((480, 640), np.uint8))
    with pytest.raises(ValueError, match=r"got shape \(0, 0, 3\)"):
        Frame("c1", 8, 0.0, np.zeros((0, 0, 3), np.uint8))
