"""A private mosquitto on a free localhost port, for the demo, the tests and the benchmarks.

Not for production: a deployment runs its own broker. This starts ``mosquitto``
(Debian package ``mosquitto``) with a generated configuration in a working
folder, waits until it listens, and can stop and start it again on the same
port (its persistence file, when enabled, survives that).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class MosquittoNotFound(RuntimeError):
    """The mosquitto executable is not installed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable (Debian installs it in /usr/sbin), or None."""
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class LocalBroker:
    """mosquitto on 127.0.0.1, started at construction.

    Args:
        workdir: where its configuration, log and (optional) persistence file live.
        extra: more mosquitto.conf lines (TLS listeners, password files, ...); a ``listener`` or
            ``allow_anonymous`` line here replaces the default one.
        persistence: keep retained messages and persistent sessions across restarts.
        port: the port (default: a free one).
        max_queued_messages: QoS 1 messages queued per offline persistent client (0: no limit).
        verbose: log every packet to ``workdir/mosquitto.log`` (slow under heavy load).
    """

    def __init__(self, workdir: Path, extra: str = "", persistence: bool = False, port: int | None = None,
                 max_queued_messages: int = 10000, verbose: bool = True):
        exe = find_mosquitto()
        if exe is None:
            raise MosquittoNotFound("the MQTT broker mosquitto is not installed (sudo apt-get install mosquitto)")
        self.exe = exe
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.verbose = verbose
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1" if "listener" not in extra else "",
                 "allow_anonymous true" if "allow_anonymous" not in extra else "",
                 f"persistence {'true' if persistence else 'false'}",
                 # as root, mosquitto drops to the 'mosquitto' user, which may not write into workdir
                 "user root" if os.geteuid() == 0 else "",
                 f"persistence_location {workdir}/", f"max_queued_messages {max_queued_messages}", extra]
        self.conf.write_text("\n".join(x for x in lines if x) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([self.exe, "-c", str(self.conf), *(["-v"] if self.verbose else [])],
                                            stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
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
