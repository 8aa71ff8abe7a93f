"""Shared fixtures: the real data in ../shared and a real mosquitto broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.localbroker import LocalBroker, find_mosquitto, free_port

__all__ = ["FIXTURES", "IN_CI", "ROOT", "SHARED", "Broker", "free_port", "shared_file"]

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


class Broker(LocalBroker):
    """A real mosquitto for a test (see :class:`LocalBroker`); skips, or fails under CI, without mosquitto."""

    def __init__(self, workdir: Path, extra: str = "", persistence: bool = False, port: int | None = None):
        if find_mosquitto() is None:
            if IN_CI:
                pytest.fail("mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)")
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        super().__init__(workdir, extra, persistence, port)


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free localhost port, stopped after the test."""
    broker = Broker(tmp_path)
    yield broker
    broker.stop()
