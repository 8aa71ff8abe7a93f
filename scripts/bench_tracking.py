"""Benchmark our tracker against peer trackers on identical, GT-derived detections.

Ground truth
    The two real MOTChallenge (MOT15) sequences shipped inside the ``motmetrics``
    package: ``motmetrics/data/TUD-Campus/gt.txt`` (71 frames) and
    ``TUD-Stadtmitte/gt.txt`` (179 frames), MOT format, pedestrians, static
    camera, 640x480 at 25 frames/s (the frame rate of both TUD sequences in
    MOT15's ``seqinfo.ini``).

Noise model (turns GT boxes into detector-like input; seeded with ``--seed``)
    Per (sequence, setting) a NumPy generator is seeded from ``(seed,
    crc32(sequence), crc32(setting))``; detections are generated once, written
    to ``<workdir>/<setting>/<sequence>.npz`` (plus a MOT ``det.txt`` twin for
    humans) and every contender reads that same file.

    * Frames: every ``--skip``-th frame is kept (1, 1+k, 1+2k, ...); the
      timestamp of frame ``f`` stays real, ``t0 + (f - 1) / 25`` with ``t0`` a
      Unix time, so a tracker sees ``dt = k / 25`` s. Metrics are computed on the
      kept frames only.
    * Misses: each GT box is missed with probability ``--miss``. A missed box is
      returned anyway, at low confidence (uniform in [0.10, 0.45]), with
      probability ``--low-conf-frac``, otherwise dropped. This is what makes a
      ByteTrack-style second association stage matter.
    * Hits: the remaining boxes get confidence uniform in [0.50, 1.00].
    * Jitter: every returned true box has its centre moved by
      N(0, (jitter*w)^2), N(0, (jitter*h)^2) and its width/height scaled by
      (1 + N(0, jitter^2)), clamped to at least 0.3 of the original.
      Boxes are not clipped to the image (neither is the GT).
    * False positives: Poisson(``--fp``) per kept frame, with a size taken from a
      random GT box of the sequence times U(0.8, 1.25) per side; with
      probability ``--fp-near`` placed beside a GT box of the frame (offset
      0.6-1.5 box widths sideways, like a shadow or a neighbour fragment),
      otherwise uniformly inside the image; confidence uniform in [0.10, 0.80].
    * All class ids are 0 (person).

    Presets (``--preset``, repeatable; all four by default):
    ``default`` miss 0.10, low-conf-frac 0.5, jitter 0.05, fp 0.5, skip 1;
    ``hard`` miss 0.25, jitter 0.08 (rest default); ``skip3`` default noise and
    skip 3; ``clean`` no noise at all (every GT box, exact, high confidence).
    Explicit noise options override the values of every chosen preset (the
    setting is then labelled ``<preset>+custom``); with noise options and no
    ``--preset`` only ``default`` is run.

Contenders
    Each runs in its own long-lived worker process (``_bench_tracking_worker.py``)
    under its own interpreter: ours under ``/work/main/.venv`` (numpy 2; the
    repository root is put on ``PYTHONPATH``), peers in virtual environments
    under ``--venv-root`` made by ``scripts/setup_bench_envs.sh`` (norfair needs
    numpy < 2, the ``trackers`` package numpy >= 2, ``sv.ByteTrack`` needs
    supervision 0.30.x while ``trackers`` pulls a newer one, and ultralytics
    needs torch). Every parameter handed to a contender is in ``CONTENDERS``
    below, with the reason for each non-default value.

    Our reported boxes are ``tracks.xyxy`` of every returned track, coasting
    ones (``det_index == -1``) included, i.e. exactly what the pipeline gets
    (``Tracker`` reports a track through ``report_misses`` missed frames, 1 by
    default, and keeps longer-lost tracks unreported; see its docstring);
    ``--ours-matched-only`` keeps only the matched ones (for analysis). Until ``edge_agent.tracking`` exists, ``--ours-standin NAME``
    runs peer NAME in the "ours" slot (clearly labelled) to exercise the harness.

Timing
    Only the tracker's update call is timed, inside the contender's process, one
    thread per process (OMP/OPENBLAS/MKL_NUM_THREADS=1, torch.set_num_threads(1)).
    Following the machine's benchmark notes, contenders take turns on whole
    sequences (71-179 frames) in a shuffled order, ``--repeats`` cycles; a run
    whose update calls got less than 85 % CPU per wall second is flagged as
    contended, and the reported time is the fastest uncontended run (the fastest
    run if all were contended). Tracking output comes from the first cycle.

Metrics
    ``motmetrics`` 1.4.0 with IoU distance, ``max_iou=0.5`` (a match needs IoU >=
    0.5): MOTA, IDF1, ID switches, FP, FN (+ MOTP, MT, ML, precision, recall in
    the JSON), per sequence and over both sequences (motmetrics' OVERALL). This
    orchestrator runs in the ``core`` venv (numpy 2), where motmetrics' call of
    the removed ``np.asfarray`` is served by a shim installed before motmetrics
    is imported: ``np.asfarray = lambda a, dtype=float: np.asarray(a, dtype)``.
    If motmetrics is not importable, the script re-executes itself under
    ``<venv-root>/core/bin/python``.

Usage
    bash scripts/setup_bench_envs.sh                 # once, venvs in /tmp/bench-venvs
    python scripts/bench_tracking.py                 # all presets, all contenders
    python scripts/bench_tracking.py --preset hard --json out/bench.json
    python scripts/bench_tracking.py --ours-standin trackers_bytetrack   # before ours exists
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_bench_tracking_worker.py"
DEFAULT_VENV_ROOT = Path("/tmp/bench-venvs")
DEFAULT_OURS_PYTHON = REPO / ".venv" / "bin" / "python"

#: Geometry and rate of the GT sequences (MOT15 seqinfo.ini).
SEQUENCES: dict[str, dict[str, float]] = {
    "TUD-Campus": {"fps": 25.0, "width": 640, "height": 480},
    "TUD-Stadtmitte": {"fps": 25.0, "width": 640, "height": 480},
}

#: Confidence bands of the noise model.
CONF_HIGH = (0.50, 1.00)
CONF_LOW = (0.10, 0.45)
CONF_FP = (0.10, 0.80)

#: Harmonised track-start rules handed to every peer that accepts them (unless
#: ``--peer-defaults``): a detection is "high" / may start a track from
#: ``ACTIVATION_CONF`` on, which is the lower edge of the noise model's high band,
#: i.e. what a calibrated threshold on this detector would be; a track is
#: reported from its ``MIN_HITS``-th matched frame on (ByteTrack's own rule,
#: hard-wired in Ultralytics).
ACTIVATION_CONF = 0.5
MIN_HITS = 2

#: Every contender: adapter in the worker, venv (None: ours), and parameters.
#: Values "$fps" (sequence rate, 25), "$eff_fps" (rate of update calls, 25/skip),
#: "$eff_fps_int" (rounded) and "$skip" are filled in per sequence by the worker.
#: "harmonise" entries are merged over "params" unless --peer-defaults.
CONTENDERS: dict[str, dict[str, Any]] = {
    "ours": {
        "label": "ours (edge_agent)",
        "venv": None,
        "adapter": "ours",
        # TrackerConfig() defaults. If TrackerConfig has a frame_rate field it
        # gets the rate of update calls; the tracker also receives real
        # timestamps, so it can work out dt itself. "update": extra keyword
        # arguments of every update call: frame_size=(width, height) of the
        # sequence (640x480), which the pipeline also passes (from the image)
        # and Ultralytics' trackers also get (in their Boxes); ours uses it
        # only to not report a coasting track whose predicted box is mostly
        # outside the image.
        "params": {"config": {}, "config_if_accepted": {"frame_rate": "$eff_fps"},
                   "update": {"frame_size": ["$width", "$height"]}},
        "harmonise": {},
    },
    "sv_bytetrack": {
        "label": "supervision ByteTrack",
        "venv": "supervision",
        "adapter": "supervision",
        # Defaults: track_activation_threshold 0.25, lost_track_buffer 30,
        # minimum_matching_threshold 0.8, minimum_consecutive_frames 1.
        # frame_rate: no timestamps are accepted, so the rate of update calls;
        # the buffer is lost_track_buffer * frame_rate / 30 frames (= 1 s).
        "params": {"init": {"frame_rate": "$eff_fps"}},
        # track_activation_threshold is also sv's high/low split; new tracks
        # need >= threshold + 0.1 (sv's internal rule).
        "harmonise": {"init": {"track_activation_threshold": ACTIVATION_CONF, "minimum_consecutive_frames": MIN_HITS}},
    },
    "trackers_sort": {
        "label": "trackers SORT",
        "venv": "trackers",
        "adapter": "trackers",
        # Defaults: lost_track_buffer 30 (1 s at 30 fps), track_activation_threshold
        # 0.25, minimum_consecutive_frames 3, minimum_iou_threshold 0.3.
        # Gets real timestamps, so frame_rate is the sequence's native 25.
        "params": {"class": "SORTTracker", "init": {"frame_rate": "$fps"}},
        "harmonise": {"init": {"track_activation_threshold": ACTIVATION_CONF, "minimum_consecutive_frames": MIN_HITS}},
    },
    "trackers_bytetrack": {
        "label": "trackers ByteTrack",
        "venv": "trackers",
        "adapter": "trackers",
        # Defaults: track_activation_threshold 0.7, high_conf_det_threshold 0.6,
        # minimum_consecutive_frames 2, minimum_iou_threshold 0.1.
        "params": {"class": "ByteTrackTracker", "init": {"frame_rate": "$fps"}},
        "harmonise": {
            "init": {
                "track_activation_threshold": ACTIVATION_CONF,
                "high_conf_det_threshold": ACTIVATION_CONF,
                "minimum_consecutive_frames": MIN_HITS,
            }
        },
    },
    "trackers_ocsort": {
        "label": "trackers OC-SORT",
        "venv": "trackers",
        "adapter": "trackers",
        # Defaults: high_conf_det_threshold 0.6 (also gates new tracks),
        # minimum_consecutive_frames 3, minimum_iou_threshold 0.3, delta_t 3.
        "params": {"class": "OCSORTTracker", "init": {"frame_rate": "$fps"}},
        "harmonise": {"init": {"high_conf_det_threshold": ACTIVATION_CONF, "minimum_consecutive_frames": MIN_HITS}},
    },
    "trackers_botsort": {
        "label": "trackers BoT-SORT",
        "venv": "trackers",
        "adapter": "trackers",
        # Defaults: track_activation_threshold 0.7, high_conf_det_threshold 0.6,
        # minimum_consecutive_frames 2. enable_cmc=False always: there are no
        # images (CMC would be skipped anyway with frame=None).
        "params": {"class": "BoTSORTTracker", "init": {"frame_rate": "$fps", "enable_cmc": False}},
        "harmonise": {
            "init": {
                "track_activation_threshold": ACTIVATION_CONF,
                "high_conf_det_threshold": ACTIVATION_CONF,
                "minimum_consecutive_frames": MIN_HITS,
            }
        },
    },
    "norfair": {
        "label": "norfair",
        "venv": "norfair",
        "adapter": "norfair",
        # Required args: IoU distance with distance_threshold 0.7 (match needs
        # IoU > 0.3), as in norfair's own box demos. hit_counter_max 15 default.
        # No frame rate: with frame skipping, update(period=skip) as norfair
        # documents. No confidence gate (detection_threshold default 0).
        "params": {"init": {"distance_function": "iou", "distance_threshold": 0.7}, "period": "$skip"},
        # initialization_delay d: reported after d + 1 matched frames
        # (default hit_counter_max // 2 = 7, i.e. 8 frames).
        "harmonise": {"init": {"initialization_delay": MIN_HITS - 1}},
    },
    "ul_bytetrack": {
        "label": "Ultralytics BYTETracker",
        "venv": "ultralytics",
        "adapter": "ultralytics",
        # bytetrack.yaml: track_high_thresh 0.25, track_low_thresh 0.1,
        # new_track_thresh 0.25, track_buffer 30, match_thresh 0.8, fuse_score.
        # 8.4 dropped the frame_rate argument (older releases kept lost tracks
        # int(frame_rate / 30 * track_buffer) frames): track_buffer is set to
        # that value, i.e. 1 s of update calls.
        "params": {"yaml": "bytetrack.yaml", "overrides": {"track_buffer": "$eff_fps_int"}},
        "harmonise": {"overrides": {"track_high_thresh": ACTIVATION_CONF, "new_track_thresh": ACTIVATION_CONF}},
    },
    "ul_botsort": {
        "label": "Ultralytics BOTSORT",
        "venv": "ultralytics",
        "adapter": "ultralytics",
        # botsort.yaml as bytetrack.yaml plus gmc sparseOptFlow (skipped: no
        # image), proximity/appearance thresholds; with_reid forced False.
        "params": {"yaml": "botsort.yaml", "overrides": {"track_buffer": "$eff_fps_int", "with_reid": False}},
        "harmonise": {"overrides": {"track_high_thresh": ACTIVATION_CONF, "new_track_thresh": ACTIVATION_CONF}},
    },
    "ul_ocsort": {
        "label": "Ultralytics OCSORT",
        "venv": "ultralytics",
        "adapter": "ultralytics",
        # ocsort.yaml: thresholds as bytetrack.yaml, delta_t 3, inertia 0.2, use_byte False.
        "params": {"yaml": "ocsort.yaml", "overrides": {"track_buffer": "$eff_fps_int"}},
        "harmonise": {"overrides": {"track_high_thresh": ACTIVATION_CONF, "new_track_thresh": ACTIVATION_CONF}},
    },
}

NOISE_KEYS = ("miss", "low_conf_frac", "jitter", "fp", "fp_near", "skip")


@dataclasses.dataclass(frozen=True)
class Noise:
    """Parameters of the GT-to-detections noise model (see the module docstring)."""

    miss: float = 0.10
    low_conf_frac: float = 0.5
    jitter: float = 0.05
    fp: float = 0.5
    fp_near: float = 0.5
    skip: int = 1


PRESETS: dict[str, Noise] = {
    "default": Noise(),
    "hard": Noise(miss=0.25, jitter=0.08),
    "skip3": Noise(skip=3),
    "clean": Noise(miss=0.0, low_conf_frac=0.0, jitter=0.0, fp=0.0, skip=1),
}

SUMMARY_METRICS = [
    "num_frames",
    "mota",
    "motp",
    "idf1",
    "num_switches",
    "num_false_positives",
    "num_misses",
    "mostly_tracked",
    "mostly_lost",
    "num_fragmentations",
    "precision",
    "recall",
    "num_unique_objects",
]

CONTENDED_CPU_RATIO = 0.85
TS0 = 1_700_000_000.0  # Unix time of frame 1: realistic magnitude for float timestamps


# --------------------------------------------------------------------------- motmetrics


def import_motmetrics() -> Any:
    """Import motmetrics under numpy 2 by restoring the removed ``np.asfarray`` first."""
    if not hasattr(np, "asfarray"):
        np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    import motmetrics

    return motmetrics


def ensure_motmetrics(venv_root: Path) -> None:
    """Re-exec under the core venv's Python when motmetrics is missing here."""
    try:
        import_motmetrics()
    except ImportError:
        core_dir = venv_root / "core"
        core = core_dir / "bin" / "python"
        # Compare venvs, not binaries: every venv's python resolves to the same base interpreter.
        if core.exists() and Path(sys.prefix).resolve() != core_dir.resolve():
            print(f"motmetrics not importable here; re-running under {core}", file=sys.stderr)
            os.execv(str(core), [str(core), *sys.argv])
        sys.exit(f"motmetrics is not importable (and no usable {core}): run scripts/setup_bench_envs.sh")


# --------------------------------------------------------------------------- ground truth and noise


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One MOT ``gt.txt``: rows of frame, id and top-left/size boxes."""

    name: str
    frame: np.ndarray  # (n,) int64
    obj_id: np.ndarray  # (n,) int64
    xywh: np.ndarray  # (n, 4) float64, top-left x, y, width, height
    fps: float
    width: int
    height: int

    @property
    def num_frames(self) -> int:
        return int(self.frame.max())

    @classmethod
    def load(cls, name: str, path: Path) -> GroundTruth:
        rows = np.loadtxt(path, delimiter=",", ndmin=2)
        rows = rows[rows[:, 6] != 0]  # MOT "consider" flag; all 1 in these files
        info = SEQUENCES[name]
        return cls(
            name=name,
            frame=rows[:, 0].astype(np.int64),
            obj_id=rows[:, 1].astype(np.int64),
            xywh=rows[:, 2:6].astype(np.float64),
            fps=float(info["fps"]),
            width=int(info["width"]),
            height=int(info["height"]),
        )


@dataclasses.dataclass
class DetectionSet:
    """Detections of all kept frames of one sequence under one noise setting."""

    frames: np.ndarray  # (F,) kept MOT frame numbers
    ts: np.ndarray  # (F,) seconds
    offsets: np.ndarray  # (F + 1,) row ranges per frame
    xyxy: np.ndarray  # (N, 4) float32
    conf: np.ndarray  # (N,) float32
    kind: np.ndarray  # (N,) int8: 0 true high-conf, 1 true low-conf, 2 false positive
    meta: dict[str, Any]

    def save(self, npz_path: Path) -> None:
        """Write the ``.npz`` the workers read and a MOT ``det.txt`` twin next to it."""
        n = len(self.conf)
        np.savez(
            npz_path,
            frames=self.frames,
            ts=self.ts,
            offsets=self.offsets,
            det_xyxy=self.xyxy,
            det_conf=self.conf,
            det_cls=np.zeros(n, np.int64),
            det_kind=self.kind,
            meta=np.array(json.dumps(self.meta)),
        )
        det_frame = np.repeat(self.frames, np.diff(self.offsets))
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        mot = np.column_stack([det_frame, -np.ones(n), self.xyxy[:, :2], wh, self.conf, -np.ones((n, 3))])
        np.savetxt(npz_path.with_suffix(".det.txt"), mot, fmt="%g", delimiter=",")


def seeded_rng(seed: int, *labels: str) -> np.random.Generator:
    """Generator seeded by ``seed`` and stable hashes of ``labels``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *(zlib.crc32(s.encode()) for s in labels)]))


def make_detections(gt: GroundTruth, noise: Noise, rng: np.random.Generator, setting: str) -> DetectionSet:
    """Apply the noise model of the module docstring to ``gt``."""
    skip = max(1, int(noise.skip))
    kept = np.arange(1, gt.num_frames + 1, skip, dtype=np.int64)
    sizes = gt.xywh[:, 2:4]
    boxes: list[np.ndarray] = []
    confs: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    offsets = [0]
    for f in kept:
        rows = gt.xywh[gt.frame == f]
        n = len(rows)
        missed = rng.random(n) < noise.miss
        as_low = missed & (rng.random(n) < noise.low_conf_frac)
        keep = ~missed | as_low
        x, y, w, h = rows[keep].T
        cx = x + w / 2 + rng.normal(0.0, 1.0, len(w)) * noise.jitter * w
        cy = y + h / 2 + rng.normal(0.0, 1.0, len(h)) * noise.jitter * h
        w2 = w * np.maximum(0.3, 1 + rng.normal(0.0, 1.0, len(w)) * noise.jitter)
        h2 = h * np.maximum(0.3, 1 + rng.normal(0.0, 1.0, len(h)) * noise.jitter)
        low = as_low[keep]
        conf = np.where(low, rng.uniform(*CONF_LOW, len(w)), rng.uniform(*CONF_HIGH, len(w)))
        true_xyxy = np.column_stack([cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2])

        n_fp = int(rng.poisson(noise.fp)) if noise.fp > 0 else 0
        fp_xyxy = np.zeros((n_fp, 4))
        for i in range(n_fp):
            fw, fh = sizes[rng.integers(len(sizes))] * rng.uniform(0.8, 1.25, 2)
            if n > 0 and rng.random() < noise.fp_near:
                bx, by, bw, bh = rows[rng.integers(n)]
                side = rng.choice([-1.0, 1.0])
                fcx = bx + bw / 2 + side * rng.uniform(0.6, 1.5) * bw
                fcy = by + bh / 2 + rng.uniform(-0.3, 0.3) * bh
            else:
                fcx = rng.uniform(fw / 2, max(fw / 2 + 1, gt.width - fw / 2))
                fcy = rng.uniform(fh / 2, max(fh / 2 + 1, gt.height - fh / 2))
            fp_xyxy[i] = [fcx - fw / 2, fcy - fh / 2, fcx + fw / 2, fcy + fh / 2]
        fp_conf = rng.uniform(*CONF_FP, n_fp)

        frame_xyxy = np.concatenate([true_xyxy, fp_xyxy])
        frame_conf = np.concatenate([conf, fp_conf])
        frame_kind = np.concatenate([low.astype(np.int8), np.full(n_fp, 2, np.int8)])
        order = rng.permutation(len(frame_conf))  # no tell-tale ordering of true vs false boxes
        boxes.append(frame_xyxy[order])
        confs.append(frame_conf[order])
        kinds.append(frame_kind[order])
        offsets.append(offsets[-1] + len(order))
    meta = {
        "sequence": gt.name,
        "setting": setting,
        "noise": dataclasses.asdict(noise),
        "fps": gt.fps,
        "eff_fps": gt.fps / skip,
        "skip": skip,
        "width": gt.width,
        "height": gt.height,
        "ts0": TS0,
    }
    return DetectionSet(
        frames=kept,
        ts=TS0 + (kept - 1) / gt.fps,
        offsets=np.asarray(offsets, np.int64),
        xyxy=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        conf=np.concatenate(confs).astype(np.float32) if confs else np.zeros(0, np.float32),
        kind=np.concatenate(kinds) if kinds else np.zeros(0, np.int8),
        meta=meta,
    )


# --------------------------------------------------------------------------- workers


@dataclasses.dataclass(frozen=True)
class Job:
    """One (setting, sequence) detection file."""

    setting: str
    sequence: str
    dets: Path
    frames: int


class Worker:
    """A contender's long-lived subprocess speaking the JSON-lines protocol."""

    def __init__(self, name: str, python: Path, params: dict[str, Any], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [str(python), str(WORKER), name, json.dumps(params)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            return {
                "ready": False,
                "ok": False,
                "error": f"worker exited (rc {self.proc.returncode}), see {self.log.name}",
            }
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, dets: Path, out: Path | None) -> dict[str, Any]:
        """Run one sequence; returns the worker's answer."""
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            return {"ok": False, "error": "worker is not running"}
        self.proc.stdin.write(json.dumps({"op": "run", "dets": str(dets), "out": str(out) if out else None}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.log.close()


def contender_params(name: str, peer_defaults: bool, ours_matched_only: bool) -> dict[str, Any]:
    """Parameters sent to the worker: ``params`` with ``harmonise`` merged in."""
    spec = CONTENDERS[name]
    params: dict[str, Any] = json.loads(json.dumps(spec["params"]))
    if not peer_defaults:
        for key, extra in spec["harmonise"].items():
            params.setdefault(key, {}).update(extra)
    params["adapter"] = spec["adapter"]
    if spec["adapter"] == "ours":
        params["matched_only"] = ours_matched_only
    return params


def worker_env(ours: bool) -> dict[str, str]:
    """Environment of a worker: one thread, quiet libraries, repo on the path for ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        YOLO_OFFLINE="1",
        YOLO_VERBOSE="False",
        PYTHONWARNINGS="ignore",
        YOLO_CONFIG_DIR=str(Path(tempfile.gettempdir()) / "bench-ultralytics-cfg"),
    )
    if ours:
        env["PYTHONPATH"] = str(REPO)
    return env


# --------------------------------------------------------------------------- metrics


def accumulate(mm: Any, gt: GroundTruth, frames: np.ndarray, tracks: dict[str, np.ndarray]) -> Any:
    """Build the motmetrics accumulator of one tracker output against GT on ``frames``."""
    acc = mm.MOTAccumulator(auto_id=False)
    t_frame, t_id, t_xyxy = tracks["frame"], tracks["track_id"], tracks["xyxy"].astype(np.float64)
    t_xywh = np.column_stack([t_xyxy[:, :2], t_xyxy[:, 2:] - t_xyxy[:, :2]])
    for f in frames:
        g = gt.frame == f
        h = t_frame == f
        dist = mm.distances.iou_matrix(gt.xywh[g], t_xywh[h], max_iou=0.5)
        acc.update(gt.obj_id[g].tolist(), t_id[h].tolist(), dist, frameid=int(f))
    return acc


def summarize(mm: Any, accs: list[Any], names: list[str]) -> dict[str, dict[str, float]]:
    """Per-sequence and OVERALL metrics as plain dicts."""
    mh = mm.metrics.create()
    df = mh.compute_many(accs, names=names, metrics=SUMMARY_METRICS, generate_overall=len(accs) > 1)
    out: dict[str, dict[str, float]] = {}
    for row_name, row in df.iterrows():
        out["OVERALL" if len(accs) > 1 and row_name == "OVERALL" else str(row_name)] = {
            k: float(row[k]) for k in SUMMARY_METRICS
        }
    if len(accs) == 1:
        out["OVERALL"] = out[names[0]]
    return out


# --------------------------------------------------------------------------- reporting


def pick_time(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Fastest uncontended run (fastest overall if every run was contended)."""
    ok = [r for r in runs if r.get("ok")]
    clean = [r for r in ok if r["wall_s"] <= 0 or r["cpu_s"] / r["wall_s"] >= CONTENDED_CPU_RATIO]
    best = min(clean or ok, key=lambda r: r["wall_s"])
    ms = np.asarray(best["frame_ms"])
    return {
        "ms_per_frame": 1e3 * best["wall_s"] / best["frames"],
        "ms_median": float(np.median(ms)),
        "ms_p95": float(np.percentile(ms, 95)),
        "ms_max": float(ms.max()),
        "cpu_ratio": best["cpu_s"] / best["wall_s"] if best["wall_s"] > 0 else 1.0,
        "runs": len(ok),
        "contended_runs": len(ok) - len(clean),
        "all_contended": not clean,
        "frames": best["frames"],
        "wall_s": best["wall_s"],
        "frame_ms": best["frame_ms"],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return None
    return a / b


def fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def print_tables(results: dict[str, Any], per_seq: bool) -> None:
    """Human-readable tables per setting plus the ours/peer ratios."""
    for setting, block in results["settings"].items():
        print(f"\n=== {setting}: {json.dumps(block['noise'])}")
        header = f"{'tracker':<26}{'seq':<16}{'MOTA':>8}{'IDF1':>8}{'IDSW':>6}{'FP':>6}{'FN':>6}"
        header += f"{'ms/frame':>10}{'p95 ms':>8}"
        print(header)
        print("-" * len(header))
        for res in block["trackers"].values():
            rows = [*res["metrics"].keys()] if per_seq else ["OVERALL"]
            rows = sorted(rows, key=lambda r: r == "OVERALL")
            for seq in rows:
                m = res["metrics"][seq]
                t = res["time"][seq]
                print(
                    f"{res['label'][:25]:<26}{seq[:15]:<16}{m['mota']:>8.3f}{m['idf1']:>8.3f}"
                    f"{int(m['num_switches']):>6}{int(m['num_false_positives']):>6}{int(m['num_misses']):>6}"
                    f"{fmt(t['ms_per_frame'], '.3f'):>10}{fmt(t.get('ms_p95'), '.3f'):>8}"
                )
        r = block.get("ratios")
        if r:
            print(
                f"ours/best-peer: MOTA {fmt(r['mota'], '.3f')} (best {r['best_mota_peer']}), "
                f"IDF1 {fmt(r['idf1'], '.3f')} (best {r['best_idf1_peer']}), "
                f"IDSW {fmt(r['idsw'], '.2f')} "
                f"({r['ours_idsw']:.0f} vs {r['best_idsw']:.0f} of {r['best_idsw_peer']}); "
                f"ours/fastest-peer time {fmt(r['time'], '.2f')} (fastest {r['fastest_peer']})"
            )


def compute_ratios(trackers: dict[str, Any], ours_key: str) -> dict[str, Any] | None:
    """Ratios ours / best peer on the OVERALL row (higher is better for MOTA/IDF1, lower for IDSW and time)."""
    if ours_key not in trackers:
        return None
    peers = {k: v for k, v in trackers.items() if k != ours_key}
    if not peers:
        return None
    ours = trackers[ours_key]
    om, ot = ours["metrics"]["OVERALL"], ours["time"]["OVERALL"]["ms_per_frame"]

    def best(key: str, lower: bool) -> tuple[str, float]:
        vals = {k: v["metrics"]["OVERALL"][key] for k, v in peers.items()}
        k = (min if lower else max)(vals, key=lambda n: vals[n])
        return k, vals[k]

    bm, bmv = best("mota", False)
    bi, biv = best("idf1", False)
    bs, bsv = best("num_switches", True)
    times = {k: v["time"]["OVERALL"]["ms_per_frame"] for k, v in peers.items()}
    fast = min(times, key=lambda n: times[n])
    return {
        "mota": ratio(om["mota"], bmv),
        "best_mota_peer": bm,
        "idf1": ratio(om["idf1"], biv),
        "best_idf1_peer": bi,
        # IDSW ratio: undefined when the best peer has 0 switches; then (ours+1)/(best+1) is also given.
        "idsw": ratio(om["num_switches"], bsv),
        "idsw_plus1": (om["num_switches"] + 1) / (bsv + 1),
        "best_idsw_peer": bs,
        "best_idsw": bsv,
        "ours_idsw": om["num_switches"],
        "time": ratio(ot, times[fast]),
        "fastest_peer": fast,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", action="append", choices=sorted(PRESETS), help="noise preset (repeatable; default: all)")
    p.add_argument("--miss", type=float, help="fraction of GT boxes missed (default 0.10)")
    p.add_argument("--low-conf-frac", type=float, help="fraction of missed boxes returned at low confidence (0.5)")
    p.add_argument("--jitter", type=float, help="box noise std relative to w/h (0.05)")
    p.add_argument("--fp", type=float, help="false positives per frame, Poisson mean (0.5)")
    p.add_argument("--fp-near", type=float, help="fraction of false positives placed beside a GT box (0.5)")
    p.add_argument("--skip", type=int, help="keep every k-th frame, timestamps stay real (1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--sequences", default=",".join(SEQUENCES), help="comma list of GT sequences")
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma list of contenders (default all: {','.join(CONTENDERS)})",
    )
    p.add_argument("--venv-root", type=Path, default=DEFAULT_VENV_ROOT, help="where setup_bench_envs.sh put the venvs")
    p.add_argument("--ours-python", type=Path, default=DEFAULT_OURS_PYTHON, help="interpreter for our tracker")
    p.add_argument("--ours-matched-only", action="store_true", help="report only our tracks matched this frame")
    p.add_argument(
        "--ours-standin", metavar="PEER", help="if ours cannot be imported, run PEER in its slot (harness test)"
    )
    p.add_argument(
        "--peer-defaults", action="store_true", help="do not harmonise peers' activation thresholds/min hits"
    )
    p.add_argument(
        "--repeats", type=int, default=5, help="timing cycles over all (sequence, contender) pairs (default 5)"
    )
    p.add_argument(
        "--workdir", type=Path, help="where detections/tracks go (default: a temp dir, removed unless --keep)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp workdir")
    p.add_argument("--per-seq", action="store_true", help="print per-sequence rows, not only OVERALL")
    p.add_argument("--json", type=Path, help="write all results here")
    return p.parse_args(argv)


def resolve_settings(args: argparse.Namespace) -> dict[str, Noise]:
    """Presets chosen, with explicit noise options applied over them."""
    overrides = {k: getattr(args, k) for k in NOISE_KEYS if getattr(args, k) is not None}
    names = args.preset or (["default"] if overrides else list(PRESETS))
    out: dict[str, Noise] = {}
    for name in dict.fromkeys(names):
        label = f"{name}+custom" if overrides else name
        out[label] = dataclasses.replace(PRESETS[name], **overrides)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [c for c in args.contenders.split(",") if c]
    unknown = [c for c in names if c not in CONTENDERS]
    if unknown:
        sys.exit(f"unknown contenders {unknown}; known: {list(CONTENDERS)}")
    if args.ours_standin is not None and args.ours_standin not in CONTENDERS.keys() - {"ours"}:
        sys.exit(f"--ours-standin must be a peer: {[c for c in CONTENDERS if c != 'ours']}")
    ensure_motmetrics(args.venv_root)
    mm = import_motmetrics()
    t_start = time.perf_counter()

    data_dir = Path(mm.__file__).resolve().parent / "data"
    sequences = [s for s in args.sequences.split(",") if s]
    gts = {s: GroundTruth.load(s, data_dir / s / "gt.txt") for s in sequences}
    settings = resolve_settings(args)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    workdir.mkdir(parents=True, exist_ok=True)
    jobs: list[Job] = []
    for setting, noise in settings.items():
        (workdir / setting).mkdir(exist_ok=True)
        for s, gt in gts.items():
            dets = make_detections(gt, noise, seeded_rng(args.seed, s, setting), setting)
            path = workdir / setting / f"{s}.npz"
            dets.save(path)
            jobs.append(Job(setting, s, path, len(dets.frames)))
    print(f"detections in {workdir} ({len(jobs)} files)", file=sys.stderr)

    # ---- start workers
    workers: dict[str, Worker] = {}
    unavailable: dict[str, str] = {}
    labels: dict[str, str] = {}
    params_used: dict[str, Any] = {}
    (workdir / "logs").mkdir(exist_ok=True)
    for name in names:
        spec = CONTENDERS[name]
        python = args.ours_python if spec["venv"] is None else args.venv_root / spec["venv"] / "bin" / "python"
        if not python.exists():
            unavailable[name] = f"no interpreter at {python}"
            continue
        params = contender_params(name, args.peer_defaults, args.ours_matched_only)
        w = Worker(name, python, params, worker_env(spec["venv"] is None), workdir / "logs" / f"{name}.log")
        if not w.hello.get("ready"):
            unavailable[name] = str(w.hello.get("error"))
            w.close()
            continue
        workers[name], labels[name], params_used[name] = w, spec["label"], params
    if "ours" in names and "ours" not in workers and args.ours_standin:
        peer = args.ours_standin
        spec = CONTENDERS[peer]
        python = args.venv_root / spec["venv"] / "bin" / "python"
        params = contender_params(peer, args.peer_defaults, False)
        w = Worker("ours", python, params, worker_env(False), workdir / "logs" / "ours-standin.log")
        if w.hello.get("ready"):
            workers["ours"], labels["ours"], params_used["ours"] = w, f"ours[standin={peer}]", params
            print(f"ours unavailable ({unavailable['ours']}); STAND-IN: {peer}", file=sys.stderr)
        else:
            w.close()
    for name, why in unavailable.items():
        print(f"contender {name} unavailable: {why}", file=sys.stderr)
    if not workers:
        sys.exit("no contender could start")

    # ---- interleaved runs
    order_rng = random.Random(args.seed)
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    out_paths: dict[tuple[str, str, str], Path] = {}
    failures: dict[tuple[str, str, str], str] = {}
    for cycle in range(max(1, args.repeats)):
        job_order = jobs[:]
        order_rng.shuffle(job_order)
        for job in job_order:
            who = list(workers)
            order_rng.shuffle(who)
            for name in who:
                key = (name, job.setting, job.sequence)
                if key in failures:
                    continue
                out = workdir / job.setting / f"{job.sequence}.{name}.tracks.npz" if cycle == 0 else None
                ans = workers[name].run(job.dets, out)
                if not ans.get("ok"):
                    failures[key] = str(ans.get("error"))
                    print(f"{name} failed on {job.setting}/{job.sequence}: {ans.get('error')}", file=sys.stderr)
                    if ans.get("traceback"):
                        print(ans["traceback"], file=sys.stderr)
                    continue
                runs.setdefault(key, []).append(ans)
                if out is not None:
                    out_paths[key] = out
        print(f"cycle {cycle + 1}/{args.repeats} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
    hellos = {n: w.hello for n, w in workers.items()}
    for w in workers.values():
        w.close()

    # ---- metrics
    results: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": args.seed,
        "repeats": args.repeats,
        "sequences": {s: {**SEQUENCES[s], "frames": gts[s].num_frames, "gt_rows": len(gts[s].frame)} for s in gts},
        "noise_confidence_bands": {"high": CONF_HIGH, "low": CONF_LOW, "fp": CONF_FP},
        "harmonised": None if args.peer_defaults else {"activation_conf": ACTIVATION_CONF, "min_hits": MIN_HITS},
        "ours_matched_only": args.ours_matched_only,
        "contenders": {
            n: {
                "label": labels[n],
                "params": params_used[n],
                "versions": hellos[n].get("versions"),
                "info": hellos[n].get("info"),
            }
            for n in workers
        },
        "unavailable": unavailable,
        "failures": {"/".join(k): v for k, v in failures.items()},
        "settings": {},
    }
    for setting, noise in settings.items():
        block: dict[str, Any] = {"noise": dataclasses.asdict(noise), "trackers": {}}
        set_jobs = [j for j in jobs if j.setting == setting]
        for name in workers:
            if any((name, setting, j.sequence) not in out_paths for j in set_jobs):
                continue
            accs, seq_names, times = [], [], {}
            total_wall, total_frames = 0.0, 0
            for j in set_jobs:
                with np.load(out_paths[(name, setting, j.sequence)]) as z:
                    tracks = {k: z[k] for k in ("frame", "track_id", "xyxy")}
                with np.load(j.dets) as z:
                    frames = z["frames"]
                accs.append(accumulate(mm, gts[j.sequence], frames, tracks))
                seq_names.append(j.sequence)
                times[j.sequence] = pick_time(runs[(name, setting, j.sequence)])
                total_wall += times[j.sequence]["wall_s"]
                total_frames += times[j.sequence]["frames"]
            all_ms = np.concatenate([times[j.sequence].pop("frame_ms") for j in set_jobs])
            times["OVERALL"] = {
                "ms_per_frame": 1e3 * total_wall / total_frames,
                "ms_median": float(np.median(all_ms)),
                "ms_p95": float(np.percentile(all_ms, 95)),
                "ms_max": float(all_ms.max()),
                "frames": total_frames,
            }
            block["trackers"][name] = {"label": labels[name], "metrics": summarize(mm, accs, seq_names), "time": times}
        block["ratios"] = compute_ratios(block["trackers"], "ours")
        results["settings"][setting] = block
    results["elapsed_s"] = time.perf_counter() - t_start

    print_tables(results, args.per_seq)
    print("\nversions:")
    for n in workers:
        print(f"  {n:<20} {json.dumps(hellos[n].get('versions'))}")
    if "ours" in workers and labels["ours"].startswith("ours[standin"):
        print("\nNOTE: the 'ours' row is a STAND-IN peer, not edge_agent's tracker.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float))
        print(f"results written to {args.json}", file=sys.stderr)
    print(f"elapsed {results['elapsed_s']:.0f} s", file=sys.stderr)
    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    elif args.workdir is None:
        print(f"kept {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
