"""Shared fixtures: the real data in ../shared and a real mosquitto broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
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


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        if IN_CI:
            pytest.fail("mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return exe


class Broker:
    """A real mosquitto on a free localhost port; can be stopped and started again on the same port.

    Args:
        workdir: where its configuration, log and (optional) persistence file live.
        extra: more mosquitto.conf lines (TLS listeners, password files, ...).
        persistence: keep retained messages and persistent sessions across restarts.
    """

    def __init__(self, workdir: Path, extra: str = "", persistence: bool = False, port: int | None = None):
        self.exe = mosquitto_exe()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1" if "listener" not in extra else "",
                 "allow_anonymous true" if "allow_anonymous" not in extra else "",
                 f"persistence {'true' if persistence else 'false'}",
                 # as root, mosquitto drops to the 'mosquitto' user, which cannot write into pytest's tmp
                 "user root" if os.geteuid() == 0 else "",
                 f"persistence_location {workdir}/", "max_queued_messages 10000", extra]
        self.conf.write_text("\n".join(x for x in lines if x) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([self.exe, "-c", str(self.conf), "-v"], stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()}") from None
                time.sleep(0.05)
        self.process.kill()
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free localhost port, stopped after the test."""
    broker = Broker(tmp_path)
    yield broker
    broker.stop()
