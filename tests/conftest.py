"""Shared fixtures: the real data in ../shared and a real mosquitto broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_AGENT_SHARED", ROOT.parent / "shared"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() == "true"


def shared_file(rel: str) -> Path:
    """A file of ../shared; skip the test when it is absent, except under CI where it must exist."""
    path = SHARED / rel
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"CI=true but {path} is missing: CI always has ../shared beside the project")
        pytest.skip(f"{path} not found: this test needs the real data in ../shared (see README)")
    return path


@pytest.fixture(scope="session")
def coco_model() -> Path:
    return shared_file("models/yolov8n_int8.onnx")


@pytest.fixture(scope="session")
def vtest_video() -> Path:
    return shared_file("data/vtest.avi")


@pytest.fixture(scope="session")
def bus_image() -> Path:
    return shared_file("data/bus.jpg")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free localhost port, stopped after the test."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        if IN_CI:
            pytest.fail("mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-c", str(conf), "-v"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {log.read_text()}") from None
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("mosquitto did not start listening within 10 s")
    yield Broker("127.0.0.1", port, proc, log)
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
