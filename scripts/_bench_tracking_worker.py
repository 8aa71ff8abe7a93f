"""Per-contender subprocess of ``scripts/bench_tracking.py``.

One worker process hosts one tracker implementation for the whole benchmark,
inside whatever Python environment that implementation needs (the peers'
numpy requirements clash, so they cannot share one interpreter). It depends
only on the standard library, numpy and the contender's own package, so it runs
under numpy 1.x and 2.x alike.

Protocol (one JSON object per line):

* start-up: ``python _bench_tracking_worker.py CONTENDER PARAMS_JSON``. The
  worker imports the contender's package and writes ``{"ready": true,
  "versions": {...}, "info": {...}}`` or ``{"ready": false, "error": "..."}``.
* request ``{"op": "run", "dets": PATH, "out": PATH | null}``: builds a fresh
  tracker for the sequence in ``PATH`` (an ``.npz`` written by the benchmark),
  feeds it every frame in order and answers ``{"ok": true, "frames": n,
  "wall_s": ..., "cpu_s": ..., "frame_ms": [...]}``. Only the tracker's update
  call is inside the timed region; building the contender's input object and
  reading its output are not. When ``out`` is given, the reported tracks are
  written there as ``.npz`` (``frame``, ``track_id``, ``xyxy``).
* request ``{"op": "quit"}`` ends the process.

The protocol uses a private copy of the original stdout; fd 1 is pointed at
stderr so that anything a library prints cannot corrupt it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

# The parent sets OMP/OPENBLAS/MKL_NUM_THREADS=1 in this process's environment
# (it has to be there before numpy loads): the trackers are tiny, and one thread
# keeps the CPU-time / wall-time contention check meaningful.

Output = tuple[np.ndarray, np.ndarray]  # (track_id (n,), xyxy (n, 4))


@dataclasses.dataclass(frozen=True)
class Sequence:
    """Detections of one (sequence, noise setting, seed), as written by the benchmark."""

    frames: np.ndarray  # (F,) MOT frame numbers that the tracker sees
    ts: np.ndarray  # (F,) seconds, real time of each frame
    offsets: np.ndarray  # (F + 1,) row ranges of each frame's detections
    xyxy: np.ndarray  # (N, 4) float32
    conf: np.ndarray  # (N,) float32
    cls: np.ndarray  # (N,) int64
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str) -> Sequence:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                frames=z["frames"],
                ts=z["ts"],
                offsets=z["offsets"],
                xyxy=z["det_xyxy"].astype(np.float32),
                conf=z["det_conf"].astype(np.float32),
                cls=z["det_cls"].astype(np.int64),
                meta=json.loads(str(z["meta"])),
            )


class Adapter:
    """Uniform face of one tracker implementation.

    ``reset`` builds a fresh tracker for a sequence, ``prepare`` converts a
    frame's arrays into the contender's input type (untimed), ``update`` is the
    timed call, ``extract`` turns its result into ids and boxes (untimed).
    """

    package: str = ""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def resolve(self, value: Any, meta: dict[str, Any]) -> Any:
        """Replace ``"$fps"``-style placeholders with values of the sequence."""
        if isinstance(value, str) and value.startswith("$"):
            key = value[1:]
            if key == "eff_fps_int":
                return max(1, int(round(meta["eff_fps"])))
            return meta[key]
        return value

    def resolved(self, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        return {k: self.resolve(v, meta) for k, v in self.params.get(key, {}).items()}

    def versions(self) -> dict[str, str]:
        out = {"numpy": np.__version__, "python": sys.version.split()[0]}
        for dist in self.package.split(","):
            if dist:
                try:
                    out[dist] = importlib.metadata.version(dist)
                except importlib.metadata.PackageNotFoundError:
                    out[dist] = "?"
        return out

    def info(self) -> dict[str, Any]:
        return {}

    def reset(self, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def prepare(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, ts: float) -> Any:
        raise NotImplementedError

    def update(self, inp: Any, ts: float) -> Any:
        raise NotImplementedError

    def extract(self, out: Any) -> Output:
        raise NotImplementedError


class OursAdapter(Adapter):
    """``edge_agent.tracking.Tracker`` of this repository."""

    package = "edge-agent"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        from edge_agent.tracking import Tracker, TrackerConfig
        from edge_agent.types import Detections

        self.Tracker, self.TrackerConfig, self.Detections = Tracker, TrackerConfig, Detections
        self.matched_only = bool(params.get("matched_only", False))
        self.config_fields: set[str] = (
            {f.name for f in dataclasses.fields(TrackerConfig)}
            if dataclasses.is_dataclass(TrackerConfig)
            else set(inspect.signature(TrackerConfig).parameters)
        )
        self.trk: Any = None

    def versions(self) -> dict[str, str]:
        out = super().versions()
        try:
            import edge_agent

            out["edge-agent"] = str(getattr(edge_agent, "__version__", out.get("edge-agent", "?")))
        except Exception:  # noqa: BLE001 - version is informational only
            pass
        return out

    def _config_kwargs(self, meta: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in self.resolved("config", meta).items() if k in self.config_fields}
        for name, value in self.resolved("config_if_accepted", meta).items():
            if name in self.config_fields:
                kwargs[name] = value
        return kwargs

    def info(self) -> dict[str, Any]:
        meta = {"fps": 25.0, "eff_fps": 25.0, "skip": 1}
        cfg = self.TrackerConfig(**self._config_kwargs(meta))
        shown = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else repr(cfg)
        return {
            "tracker_signature": str(inspect.signature(self.Tracker)),
            "config_at_25fps": json.loads(json.dumps(shown, default=str)),
            "matched_only": self.matched_only,
        }

    def reset(self, meta: dict[str, Any]) -> None:
        self.trk = self.Tracker(self.TrackerConfig(**self._config_kwargs(meta)))
        # extra keyword arguments of Tracker.update (e.g. frame_size), those it accepts
        accepted = inspect.signature(self.trk.update).parameters
        self.update_kwargs = {
            k: tuple(self.resolve(x, meta) for x in v) if isinstance(v, list) else self.resolve(v, meta)
            for k, v in self.params.get("update", {}).items()
            if k in accepted
        }

    def prepare(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, ts: float) -> Any:
        return self.Detections.from_arrays(xyxy, conf, cls)

    def update(self, inp: Any, ts: float) -> Any:
        if self.update_kwargs:
            return self.trk.update(inp, ts, **self.update_kwargs)
        return self.trk.update(inp, ts)

    def extract(self, out: Any) -> Output:
        ids = np.asarray(out.track_id)
        boxes = np.asarray(out.xyxy, dtype=np.float32).reshape(-1, 4)
        if self.matched_only:
            keep = np.asarray(out.det_index) >= 0
            ids, boxes = ids[keep], boxes[keep]
        return ids, boxes


class SupervisionByteTrackAdapter(Adapter):
    """``supervision.ByteTrack`` (0.30.x, the last line that ships it)."""

    package = "supervision"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        import supervision as sv

        self.sv = sv
        self.trk: Any = None

    def reset(self, meta: dict[str, Any]) -> None:
        self.trk = self.sv.ByteTrack(**self.resolved("init", meta))

    def prepare(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, ts: float) -> Any:
        return self.sv.Detections(xyxy=xyxy.astype(np.float32), confidence=conf, class_id=cls.astype(int))

    def update(self, inp: Any, ts: float) -> Any:
        return self.trk.update_with_detections(inp)

    def extract(self, out: Any) -> Output:
        if len(out) == 0 or out.tracker_id is None:
            return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
        return np.asarray(out.tracker_id), np.asarray(out.xyxy, np.float32)


class TrackersAdapter(Adapter):
    """Roboflow ``trackers`` package (SORT, ByteTrack, OC-SORT, BoT-SORT).

    These trackers accept a timestamp, so they get the real frame times and the
    sequence's native frame rate; skipped frames then show up as a larger step.
    """

    package = "trackers,supervision"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        import supervision as sv
        import trackers

        self.sv = sv
        self.cls: type = getattr(trackers, params["class"])
        self.use_timestamp = bool(params.get("timestamp", True))
        self.trk: Any = None

    def reset(self, meta: dict[str, Any]) -> None:
        self.trk = self.cls(**self.resolved("init", meta))

    def prepare(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, ts: float) -> Any:
        return self.sv.Detections(xyxy=xyxy.astype(np.float32), confidence=conf, class_id=cls.astype(int))

    def update(self, inp: Any, ts: float) -> Any:
        if self.use_timestamp:
            return self.trk.update(inp, timestamp=ts)
        return self.trk.update(inp)

    def extract(self, out: Any) -> Output:
        if len(out) == 0 or out.tracker_id is None:
            return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
        ids = np.asarray(out.tracker_id)
        keep = ids >= 0  # -1: detection not (yet) on a confirmed track
        return ids[keep], np.asarray(out.xyxy, np.float32)[keep]


class NorfairAdapter(Adapter):
    """``norfair.Tracker`` with two-point box detections and IoU distance."""

    package = "norfair"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        import norfair

        self.norfair = norfair
        self.trk: Any = None
        self.period = 1

    def reset(self, meta: dict[str, Any]) -> None:
        self.trk = self.norfair.Tracker(**self.resolved("init", meta))
        self.period = int(self.resolve(self.params.get("period", 1), meta))

    def prepare(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, ts: float) -> Any:
        det = self.norfair.Detection
        return [
            det(points=box.reshape(2, 2).astype(np.float64), scores=np.array([c, c], np.float64), label=int(k))
            for box, c, k in zip(xyxy, conf, cls, strict=True)
        ]

    def update(self, inp: Any, ts: float) -> Any:
        return self.trk.update(detections=inp, period=self.period)

    def extract(self, out: Any) -> Output:
        if not out:
            return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
        ids = np.array([o.id for o in out], np.int64)
        boxes = np.array([np.asarray(o.estimate).reshape(4) for o in out], np.float32)
        return ids, boxes


class UltralyticsAdapter(Adapter):
    """Ultralytics ``BYTETracker`` / ``BOTSORT`` / ``OCSORT`` fed a ``Boxes`` object.

    ``img=None``: no image, so BoT-SORT's global motion compensation is skipped
    and no ReID model is used (``with_reid`` is forced off).
    """

    package = "ultralytics,torch"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        import torch
        from ultralytics.engine.results import Boxes
        from ultralytics.trackers.track import TRACKER_MAP
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        torch.set_num_threads(1)
        self.Boxes = Boxes
        cfg = YAML.load(check_yaml(params["yaml"]))
        self.base_cfg: dict[str, Any] = dict(cfg)
        kind = cfg["tracker_type"]
        if kind not in TRACKER_MAP:
            raise RuntimeError(f"ultralytics has no tracker type {kind!r}")
        self.cls = TRACKER_MAP[kind]
        self.ns = IterableSimpleNamespace
        self.shape = (480, 640)
        self.trk: Any = None

    def info(self) -> dict[str, Any]:
        return {"yaml_defaults": self.base_cfg}

    def reset(self, meta: dict[str, Any]) -> None:
        cfg = {**self.base_cfg, **self.resolved("overrides", meta)}
        self.shape = (int(meta["height"]), int(meta["width"]))
        self.trk = self.cls(self.ns(**cfg))

    def prepare(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, ts: float) -> Any:
        data = np.concatenate([xyxy, conf[:, None], cls[:, None].astype(np.float32)], axis=1).astype(np.float32)
        return self.Boxes(data.reshape(-1, 6), self.shape)

    def update(self, inp: Any, ts: float) -> Any:
        return self.trk.update(inp, None)

    def extract(self, out: Any) -> Output:
        arr = np.asarray(out, np.float32).reshape(-1, 8)
        return arr[:, 4].astype(np.int64), arr[:, :4]


ADAPTERS: dict[str, Callable[[dict[str, Any]], Adapter]] = {
    "ours": OursAdapter,
    "supervision": SupervisionByteTrackAdapter,
    "trackers": TrackersAdapter,
    "norfair": NorfairAdapter,
    "ultralytics": UltralyticsAdapter,
}


def run_sequence(adapter: Adapter, seq: Sequence, out_path: str | None) -> dict[str, Any]:
    """Feed every frame of ``seq`` to a fresh tracker; time the update calls only."""
    adapter.reset(seq.meta)
    n = len(seq.frames)
    frame_ns = np.zeros(n, np.int64)
    cpu_ns = 0
    out_frames: list[np.ndarray] = []
    out_ids: list[np.ndarray] = []
    out_boxes: list[np.ndarray] = []
    for i in range(n):
        a, b = int(seq.offsets[i]), int(seq.offsets[i + 1])
        ts = float(seq.ts[i])
        inp = adapter.prepare(seq.xyxy[a:b], seq.conf[a:b], seq.cls[a:b], ts)
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        raw = adapter.update(inp, ts)
        t1 = time.perf_counter_ns()
        c1 = time.process_time_ns()
        frame_ns[i] = t1 - t0
        cpu_ns += c1 - c0
        if out_path is not None:
            ids, boxes = adapter.extract(raw)
            if len(np.unique(ids)) != len(ids):
                raise RuntimeError(f"duplicate track ids in frame {int(seq.frames[i])}: {ids.tolist()}")
            out_frames.append(np.full(len(ids), seq.frames[i], np.int64))
            out_ids.append(ids.astype(np.int64))
            out_boxes.append(boxes.astype(np.float32).reshape(-1, 4))
    if out_path is not None:
        np.savez(
            out_path,
            frame=np.concatenate(out_frames) if out_frames else np.zeros(0, np.int64),
            track_id=np.concatenate(out_ids) if out_ids else np.zeros(0, np.int64),
            xyxy=np.concatenate(out_boxes) if out_boxes else np.zeros((0, 4), np.float32),
        )
    return {
        "ok": True,
        "frames": n,
        "wall_s": float(frame_ns.sum()) / 1e9,
        "cpu_s": cpu_ns / 1e9,
        "frame_ms": (frame_ns / 1e6).round(4).tolist(),
    }


def serve(adapter: Adapter, reply: Callable[[dict[str, Any]], None], requests: TextIO) -> None:
    """Answer run requests until ``quit`` or end of input."""
    cache: dict[str, Sequence] = {}
    for line in requests:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("op") == "quit":
            return
        try:
            path = req["dets"]
            if path not in cache:
                cache[path] = Sequence.load(path)
            reply(run_sequence(adapter, cache[path], req.get("out")))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


def main() -> None:
    """Entry point; see the module docstring for the protocol."""
    contender, params_json = sys.argv[1], sys.argv[2]
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter goes to stderr
    sys.stdout = sys.stderr

    def reply(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    params = json.loads(params_json)
    try:
        adapter = ADAPTERS[params["adapter"]](params)
        reply({"ready": True, "contender": contender, "versions": adapter.versions(), "info": adapter.info()})
    except Exception as exc:  # noqa: BLE001 - any import/config failure makes the contender unavailable
        reply({"ready": False, "contender": contender, "error": f"{type(exc).__name__}: {exc}"})
        return
    serve(adapter, reply, sys.stdin)


if __name__ == "__main__":
    main()
