"""The controller installs and runs without the vision stack; the camera node's extras bring it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires

from conftest import ROOT

VISION = ("opencv", "onnxruntime", "filterpy")


def test_core_requirements_leave_out_the_vision_stack() -> None:
    reqs = requires("edge-agent") or []
    core = [r for r in reqs if "extra ==" not in r]
    assert core and not [r for r in core if r.lower().startswith(VISION)], core
    for extra in ("agent", "gpu", "openvino"):
        names = [r.split(";")[0].lower() for r in reqs if f'extra == "{extra}"' in r]
        assert any(n.startswith("opencv-python-headless") for n in names), (extra, names)
        assert sum(n.startswith("onnxruntime") for n in names) == 1, (extra, names)


def test_controller_command_runs_with_opencv_and_onnxruntime_absent() -> None:
    code = ("import sys\n"
            "for m in ('cv2', 'onnxruntime', 'filterpy', 'prometheus_client'): sys.modules[m] = None\n"
            "from edge_agent.cli import main\n"
            f"sys.exit(main(['controller', '-c', r'{ROOT / 'configs' / 'controller.yaml'}', '--check']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "configuration" in proc.stdout and "OK" in proc.stdout
