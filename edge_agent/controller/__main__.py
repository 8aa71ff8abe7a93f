"""``edge-agent controller -c controller.yaml`` (also ``python -m edge_agent.controller``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from edge_agent.config import ConfigError

log = logging.getLogger("edge_agent.controller")
EXIT_CONFIG = 2


def run(args: argparse.Namespace) -> int:
    from edge_agent.controller.app import Controller
    from edge_agent.controller.config import load_controller_config

    cfg = load_controller_config(args.config)
    if args.check:
        print(f"configuration {args.config}: OK ({len(cfg.intersections)} intersection(s), "
              f"{len(cfg.lighting.segments)} lighting segment(s), {len(cfg.services.areas)} service area(s))")
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    controller = Controller(cfg)
    controller.start()
    if controller.api is not None:
        print(f"dashboard: http://{cfg.http.host}:{controller.api.port}/", flush=True)
    try:
        stop.wait()
    finally:
        controller.close()
        log.info("stopped: %s", controller.ingestor.snapshot())
    return 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, type=Path, help="controller YAML file")
    p.add_argument("--check", action="store_true", help="validate the configuration and exit")
    p.set_defaults(func=run)


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``controller`` to the ``edge-agent`` command's subparsers (``edge_agent.cli.build_parser``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "controller", help="run the central controller (ingest, store, decide, publish, dashboard)")
    _add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edge_agent.controller [--log-level L] -c FILE [--check]``."""
    parser = argparse.ArgumentParser(prog="edge-agent controller", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"edge-agent controller: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
