"""scripts/install-edge.sh: lint, an idempotent install into a temporary prefix, the systemd unit."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import IN_CI, ROOT

SCRIPTS = ["scripts/install-edge.sh", "scripts/setup.sh", "scripts/test.sh", "scripts/demo.sh", ".ci/run"]


def test_shell_scripts_pass_shellcheck() -> None:
    exe = shutil.which("shellcheck")
    if exe is None:
        if IN_CI:
            pytest.fail("shellcheck is missing; scripts/test.sh installs it (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run([exe, "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], subprocess.CompletedProcess[str]]:
    """One install into a temporary prefix (pip reuses its cache: about a minute)."""
    tmp = tmp_path_factory.mktemp("install")
    args = ["bash", str(ROOT / "scripts/install-edge.sh"), "--prefix", str(tmp / "opt"), "--config-dir",
            str(tmp / "etc"), "--unit-dir", str(tmp / "units"), "--no-user", "--no-systemd"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    return tmp, args, first


def test_install_into_a_prefix_twice(installed: tuple[Path, list[str], subprocess.CompletedProcess[str]]) -> None:
    tmp_path, args, _ = installed
    cfg = tmp_path / "etc" / "config.yaml"
    assert cfg.read_text() == (ROOT / "configs/example-rtsp.yaml").read_text()
    assert (tmp_path / "etc" / "env").stat().st_mode & 0o777 == 0o600
    cfg.write_text(cfg.read_text() + "# edited by the operator\n")
    second = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "keeping the existing" in second.stdout
    assert cfg.read_text().endswith("# edited by the operator\n")  # never overwritten

    exe = tmp_path / "opt" / "venv" / "bin" / "edge-agent"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("edge-agent ")

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(tmp_path / "units" / "edge-agent.service")
    svc = unit["Service"]
    assert svc["User"] == "edge-agent" and svc["Restart"] == "on-failure"
    assert svc["ExecStart"] == f"{exe} --log-format json run -c {tmp_path / 'etc' / 'config.yaml'}"
    assert svc["StateDirectory"] == "edge-agent"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_passes_systemd_analyze(installed: tuple[Path, list[str], subprocess.CompletedProcess[str]]) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not available on this machine (Debian package systemd)")
    unit = installed[0] / "units" / "edge-agent.service"
    proc = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
