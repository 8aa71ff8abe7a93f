"""The controller's store on a real PostgreSQL server that the test starts (initdb + pg_ctl in a temp dir).

Skipped with a reason when PostgreSQL or psycopg is missing here; under CI=true a missing piece fails.
As root, the server runs as the ``postgres`` system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import IN_CI, free_port
from edge_agent.controller.app import Controller
from edge_agent.controller.store import SCHEMA_VERSION, PostgresStore, open_store
from test_controller_support import T0, config, stats_bytes


def _need(what: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {what}; .ci/run installs it")
    pytest.skip(what)


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _need("psycopg is not installed (pip install 'psycopg[binary]', the 'postgres' extra)")
    bindir = _pg_bin()
    if bindir is None:
        _need("PostgreSQL is not installed (apt-get install postgresql)")
    assert bindir is not None
    # a directory of its own, outside pytest's root-only tmp tree, so that the server's user can enter it
    base = Path(tempfile.mkdtemp(prefix="ctrl-pg-"))
    data = base / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _need("running as root and there is no 'postgres' user to run the server as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    sock = base
    def run(cmd: list[str]) -> None:
        proc = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")

    run([str(bindir / "initdb"), "-D", str(data), "-U", "ctrl", "--auth=trust", "-E", "UTF8"])
    log = base / "pg.log"
    run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
         f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    try:
        yield f"postgresql://ctrl@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_schema_migration_ingest_dedupe_and_decisions(postgres_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    s1 = open_store("unused.db", postgres_url)
    s2 = open_store("unused.db", postgres_url)  # second start: nothing to migrate
    assert isinstance(s1, PostgresStore) and s1.schema_version() == s2.schema_version() == SCHEMA_VERSION
    s1.close()
    s2.close()
    monkeypatch.setenv("CTRL_DB", postgres_url)
    c = Controller(config(tmp_path, store={"postgres_url_env": "CTRL_DB"}), connect=False)
    try:
        assert c.backend == "postgres"
        for k in range(3):
            for cam, n in (("cam-n", 5), ("cam-s", 4), ("cam-e", 3)):
                topic, payload = stats_bytes(cam, T0 + timedelta(minutes=k), {"stop": (n, 1)})
                c.ingestor.handle(topic, payload)
                c.ingestor.handle(topic, payload)  # duplicate
        c.ingestor.handle("city/cam-n/status", b"online")
        c.ingestor.handle("city/cam-n/stats", b"{}")
        assert c.ingestor.flush()
        counts = c.ingestor.snapshot()
        assert counts["stored"] == 9 and counts["duplicate"] == 9 and counts["invalid.schema"] == 1
        assert c.store.count("stats") == 9 and c.store.count("line_counts") == 9
        c.decider.run_round()
        plan = c.store.latest_decisions("plan")["main-x"]
        assert plan["flows_used"]["veh_h"] == {"north": 300.0, "south": 240.0, "east": 180.0}
        assert {n["camera_id"]: n["status"] for n in c.store.nodes()}["cam-n"] == "online"
        assert json.loads(json.dumps(c.flows(60)))[0]["points"]
    finally:
        c.close()
