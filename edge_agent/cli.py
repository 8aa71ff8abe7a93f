"""The ``edge-agent`` command.

    edge-agent run -c config.yaml        run every camera until interrupted (file sources end with the file)
    edge-agent check-config config.yaml  validate, load the model, print a summary
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from edge_agent import __version__
from edge_agent.config import AgentConfig, ConfigError, class_names_problem, load_config, redact
from edge_agent.messages import status_topic

log = logging.getLogger("edge_agent")
EXIT_CONFIG = 2


def _load_detector(cfg: AgentConfig, path: str):  # type: ignore[no-untyped-def]
    """The configured detector, or ConfigError naming the model problem."""
    from edge_agent.detection import Detector, UnsupportedModelError
    from edge_agent.scheduler import ThreadBudget

    m = cfg.model
    budget = ThreadBudget.resolve(m, cfg.performance)
    budget.apply_opencv()
    try:
        detector = Detector(m.path, m.confidence, m.iou, None, m.names, m.input_size, m.device, budget.intra_op,
                            budget.inter_op, budget.spinning, rect=m.rect)
    except (UnsupportedModelError, FileNotFoundError) as exc:
        raise ConfigError(path, [f"model.path: {exc}"]) from None
    except ValueError as exc:  # the rest is checked by the configuration: rect on a fixed-shape model
        raise ConfigError(path, [f"model.rect: {exc}"]) from None
    problems = class_names_problem(cfg, detector.names)
    if problems:
        raise ConfigError(path, problems)
    detector.set_classes(m.classes)
    return detector


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.demo import run_demo  # needs the camera node's extras (OpenCV)

    return run_demo(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    detector = _load_detector(cfg, args.config)
    m = cfg.mqtt
    print(f"configuration {args.config}: OK")
    print(f"  mqtt: {m.host}:{m.port} protocol {m.protocol}, prefix {m.topic_prefix!r}, client id {m.client_id!r}"
          f"{', TLS' if m.tls else ''}{', user ' + m.username if m.username else ''}")
    print(f"  model: {detector.describe()}")
    print(f"    keeps {', '.join(cfg.model.classes) if cfg.model.classes else 'all classes'}, "
          f"confidence > {cfg.model.confidence}, NMS IoU {cfg.model.iou}")
    print(f"  statistics: every {cfg.statistics.interval_s} s, vehicles = "
          f"{', '.join(c for c in cfg.statistics.vehicle_classes if c in detector.names) or 'none of the classes'}")
    for cam in cfg.cameras:
        kind = "file" if cam.is_file else ("usb" if isinstance(cam.source, int) else "stream")
        cap = f", at most {cam.fps_cap:g} fps" if cam.fps_cap else ""
        print(f"  camera {cam.id}: {kind} {redact(cam.source)}{cap}")
        for line in cam.lines:
            print(f"    line {line.id}: {list(line.p1)} -> {list(line.p2)}, in = {line.in_side} side")
        from edge_agent.snapshot import calibration_summary  # (light: no OpenCV)

        calibration = calibration_summary(cam)
        if calibration:
            print(f"    {calibration}")
    return 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.health import HealthServer, Metrics
    from edge_agent.mqtt import MqttPublisher
    from edge_agent.pipeline import CameraPipeline, CameraResult, frames_summary
    from edge_agent.scheduler import InferenceScheduler, ThreadBudget
    from edge_agent.spool import Spool

    cfg = load_config(args.config)
    detector = _load_detector(cfg, args.config)
    budget = ThreadBudget.resolve(cfg.model, cfg.performance)
    scheduler = InferenceScheduler.from_config(detector, cfg.performance, len(cfg.cameras), budget)
    log.info("threads: %s; inference batches of up to %d frame(s)", budget.describe(), scheduler.max_batch)
    identity = {"model": detector.path.name, "model_sha256": _sha256(detector.path)[:16],
                "config_sha256": _sha256(args.config)[:16]}
    log.info("edge-agent %s: %s", __version__, detector.describe())
    stop = threading.Event()

    abort = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.info("received %s again; leaving unsent messages in the spool", signal.Signals(signum).name)
            abort.set()
            return
        log.info("received %s; finishing the current intervals", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    metrics = Metrics()
    pipelines: dict[str, CameraPipeline] = {}
    publishers = []
    threads = []
    for cam in cfg.cameras:
        spool = Spool(cfg.spool.dir / f"{cfg.mqtt.client_id}-{cam.id}.sqlite", int(cfg.spool.max_mb * 2**20),
                      cfg.spool.max_age_h * 3600)
        if spool.depth():
            log.info("camera %s: %d message(s) from an earlier run wait in the spool; sending them first",
                     cam.id, spool.depth())
        pub = MqttPublisher(cfg.mqtt, f"{cfg.mqtt.client_id}-{cam.id}", status_topic(cfg.mqtt.topic_prefix, cam.id),
                            spool, cfg.spool.max_inflight, cfg.spool.rate)
        publishers.append(pub)
        annotate = None
        if args.annotate is not None:
            annotate = args.annotate if len(cfg.cameras) == 1 else args.annotate.with_stem(
                f"{args.annotate.stem}-{cam.id}")
        pipe = CameraPipeline(cam, cfg, detector, pub, metrics, identity, annotate, scheduler=scheduler)
        pipelines[cam.id] = pipe

        def work(p: CameraPipeline = pipe) -> None:
            try:
                p.run(stop)
            except Exception:  # one camera's bug must not stop the others
                log.exception("camera %s failed", p.cam.id)
                p.result.error = "crashed"

        t = threading.Thread(target=work, name=f"camera-{cam.id}", daemon=True)
        t.start()
        threads.append(t)
    server = None
    if cfg.health.http_port:
        server = HealthServer(cfg.health.http_host, cfg.health.http_port, metrics,
                              lambda: {cid: p.health() for cid, p in pipelines.items()})
        log.info("metrics on %s/metrics, health on %s/healthz", server.url, server.url)
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.2)
    scheduler.close()
    for pub in publishers:
        pub.close(cfg.spool.drain_s, abort)
    if server:
        server.close()
    results: dict[str, CameraResult] = {cid: p.result for cid, p in pipelines.items()}
    log.info("stopped: %s", frames_summary(results))
    return 1 if any(r.error for r in results.values()) else 0


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, thread, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "thread": record.threadName, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent", description="Traffic-camera edge agent: counts by class and "
                                "direction from YOLO on ONNX Runtime, published as interval statistics over MQTT.")
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="json: one JSON object per line, for log collectors")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every configured camera")
    run.add_argument("-c", "--config", required=True, type=Path, help="YAML configuration file")
    run.add_argument("--annotate", type=Path, metavar="VIDEO",
                     help="also write an annotated video (boxes, ids, trails, lines, counts); with several "
                          "cameras, one file each, named VIDEO-<camera>")
    run.set_defaults(func=cmd_run)
    chk = sub.add_parser("check-config", help="validate a configuration and print a summary")
    chk.add_argument("config", type=Path)
    chk.set_defaults(func=cmd_check_config)
    demo = sub.add_parser("demo", help="the whole system on a synthetic junction (no network, no downloads)")
    demo.add_argument("--source", type=Path, help="a video file instead of the synthetic clip (needs --model)")
    demo.add_argument("--model", type=Path, help="an ONNX model for --source")
    demo.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic clip")
    demo.add_argument("--seed", type=int, default=1, help="seed of the synthetic clip")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="where clips, video and chart go")
    demo.add_argument("--no-controller", action="store_true", help="run only the edge agent")
    demo.set_defaults(func=cmd_demo)
    from edge_agent.snapshot import add_subparser as add_snapshot_subparser  # `edge-agent snapshot -c ... -o x.png`

    add_snapshot_subparser(sub)
    # --- the central controller (edge_agent/controller): `edge-agent controller -c controller.yaml`
    from edge_agent.controller.__main__ import add_subparser as add_controller_subparser

    add_controller_subparser(sub)
    # --- `edge-agent export best.pt --int8`: Ultralytics .pt/.yaml -> ONNX (edge_agent/export.py; the export extra)
    from edge_agent.export import add_subparser as add_export_subparser

    add_export_subparser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if args.log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
