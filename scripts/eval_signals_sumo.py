#!/usr/bin/env python3
"""Evaluate the controller's signal control in SUMO against fixed-time, actuated and delay-based control.

A 4-arm intersection (two lanes in and out per arm, 400 m arms, 50 km/h;
permissive lefts from the inner lane, rights from the outer) with two phases
(N-S, E-W), 3 s yellow and 2 s all-red. Demand varies over the hour: every arm
carries a base flow plus a peak that moves N -> E -> S -> W; arrivals are
Poisson draws made here per seed, written as explicit vehicles, so every
policy of a seed sees exactly the same vehicles.

Cameras are emulated from SUMO detectors: per arm one camera ``cam-<arm>``
with a counting line ``stop`` (an E1 loop on each lane 60 m before the stop
line -> 60 s ``edge-agent/interval-stats`` v1 documents built by the agent's
own encoder) and per lane a zone (E2 over the last 100 m: ``vehicles``,
``queue_veh`` = halting) with its extension zone (E2 over the last 30 m:
``near_veh``) -> ``edge-agent/presence`` documents every second.

Policies, all on the same vehicles:

* ``fixed``:        Webster's plan for the hour's true mean flows (the best
                    fixed-time plan an engineer could compute), never changed;
* ``actuated``:     SUMO's gap-based actuated control (tlType actuated) with
                    the same min/max greens;
* ``delay_based``:  SUMO's time-loss based actuated control (tlType delay_based);
* ``webster``:      the controller on interval counts only: messages go through
                    ``Ingestor.handle`` -> store -> ``Decider.run_round`` every
                    60 s; each cycle runs the latest published plan;
* ``controller``:   the same, plus the presence stream through the ingest's
                    presence hook into ``PhaseActuator`` (gap-out/extension
                    within the plan's bounds, rest in green, demand-driven
                    phase choice), ticked every second; its intervals are set
                    with TraCI ``setRedYellowGreenState``.

Metric: mean delay per vehicle = tripinfo ``timeLoss`` + ``departDelay``
(waiting to enter the network), over all vehicles (the simulation runs until
the network is empty).

Usage::

    python scripts/eval_signals_sumo.py --seeds 5 --duration 3600 --json out/sumo_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("N", "E", "S", "W")
XY = {"N": (0, 400), "S": (0, -400), "E": (400, 0), "W": (-400, 0)}
OPPOSITE = {"N": "S", "S": "N", "E": "W", "W": "E"}
RIGHT_OF = {"N": "W", "E": "N", "S": "E", "W": "S"}  # coming from N, a right turn exits to the west
LEFT_OF = {"N": "E", "E": "S", "S": "W", "W": "N"}
PHASES = (("ns", ("N", "S")), ("ew", ("E", "W")))
YELLOW, ALL_RED, MIN_GREEN, MAX_GREEN = 3.0, 2.0, 7.0, 60.0
T0 = datetime(2024, 5, 6, 8, 0, tzinfo=timezone.utc)
LOOP_POS_FROM_END = 60.0
ZONE_M, NEAR_M = 100.0, 30.0
POLICIES = ("fixed", "actuated", "delay_based", "webster", "controller")


def sumo_bin(name: str) -> str:
    try:
        import sumo  # eclipse-sumo wheel

        path = Path(sumo.SUMO_HOME) / "bin" / name
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: pip install eclipse-sumo traci (the 'bench' extra)")
    return found


# ----------------------------------------------------------------------------- scenario


ACTUATION: dict[str, Any] = {}  # --actuation overrides
SETTINGS: dict[str, float] = {"near_m": NEAR_M}


def controller_config(store: Path, actuation: bool) -> dict[str, Any]:
    approaches = []
    for arm in ARMS:
        cam = f"cam-{arm.lower()}"
        approaches.append({"id": arm.lower(), "lanes": 2, "saturation_flow_veh_h_lane": 1800,
                           "flows": [{"camera": cam, "line": "stop", "direction": "in"}],
                           "presence": [f"{cam}:{arm}_in_0", f"{cam}:{arm}_in_1"]})
    inter: dict[str, Any] = {
        "id": "x4", "min_cycle_s": 30, "max_cycle_s": 120, "approaches": approaches,
        "phases": [{"id": pid, "approaches": [a.lower() for a in arms], "yellow_s": YELLOW, "all_red_s": ALL_RED,
                    "min_green_s": MIN_GREEN, "max_green_s": MAX_GREEN} for pid, arms in PHASES]}
    if actuation:
        inter["actuation"] = {"enabled": True, "tick_s": 1.0, **ACTUATION}
    return {"mqtt": {"topic_prefix": "sim", "client_id": "sumo-eval"},
            "store": {"sqlite": str(store)},
            "control": {"period_s": 60, "flow_intervals": 3, "stale_after_s": 600},
            "intersections": [inter], "http": {"enabled": False}}


def demand_rate(arm: str, t: np.ndarray, duration: float, base: float, peak: float) -> np.ndarray:
    """veh/h entering from ``arm`` at times t: base + a Gaussian peak that moves N -> E -> S -> W."""
    centre = {a: duration * (0.15 + 0.23 * i) for i, a in enumerate(ARMS)}[arm]
    width = duration * 0.12
    return base + peak * np.exp(-0.5 * ((t - centre) / width) ** 2)


def build(work: Path, seed: int, duration: float, base: float, peak: float) -> dict[str, Any]:
    """Network, vehicles and detectors in ``work``; returns the scenario's true mean flows."""
    nod = "".join(f'<node id="{a}" x="{x}" y="{y}" type="priority"/>' for a, (x, y) in XY.items())
    (work / "x.nod.xml").write_text(f'<nodes><node id="C" x="0" y="0" type="traffic_light"/>{nod}</nodes>')
    edg = "".join(f'<edge id="{a}_in" from="{a}" to="C" numLanes="2" speed="13.89"/>'
                  f'<edge id="{a}_out" from="C" to="{a}" numLanes="2" speed="13.89"/>' for a in ARMS)
    (work / "x.edg.xml").write_text(f"<edges>{edg}</edges>")
    subprocess.run([sumo_bin("netconvert"), "-n", "x.nod.xml", "-e", "x.edg.xml", "-o", "x.net.xml",
                    "--no-turnarounds", "true", "--tls.default-type", "static", "--no-warnings"],
                   cwd=work, check=True, capture_output=True)
    rng = np.random.default_rng(seed)
    vehicles = []
    dt = 1.0
    t = np.arange(0, duration, dt)
    mean_flows = {}
    for arm in ARMS:
        rate = demand_rate(arm, t, duration, base, peak)
        mean_flows[arm] = float(rate.mean())
        arrivals = t[rng.random(len(t)) < rate * dt / 3600.0]
        turns = rng.choice(3, size=len(arrivals), p=[0.15, 0.75, 0.10])
        for ts, k in zip(arrivals, turns):
            to = (RIGHT_OF[arm], OPPOSITE[arm], LEFT_OF[arm])[k]
            vehicles.append((float(ts + rng.random()), arm, to))
    vehicles.sort()
    routes = ['<routes><vType id="car" accel="2.6" decel="4.5" sigma="0.5" length="5" minGap="2.5" '
              'maxSpeed="13.89"/>']
    for i, (ts, a, b) in enumerate(vehicles):
        routes.append(f'<vehicle id="v{i}" type="car" depart="{ts:.1f}" departLane="best" departSpeed="max">'
                      f'<route edges="{a}_in {b}_out"/></vehicle>')
    routes.append("</routes>")
    (work / "x.rou.xml").write_text("\n".join(routes))
    lane_len = _lane_length(work / "x.net.xml")
    dets = ["<additional>"]
    for arm in ARMS:
        for ln in (0, 1):
            lane = f"{arm}_in_{ln}"
            L = lane_len[lane]
            dets.append(f'<inductionLoop id="loop_{lane}" lane="{lane}" pos="{L - LOOP_POS_FROM_END:.1f}" '
                        f'period="3600" file="NUL"/>')
            dets.append(f'<laneAreaDetector id="zone_{lane}" lane="{lane}" pos="{max(0.0, L - ZONE_M):.1f}" '
                        f'endPos="{L:.1f}" period="3600" file="NUL"/>')
            dets.append(f'<laneAreaDetector id="near_{lane}" lane="{lane}" pos="{L - SETTINGS["near_m"]:.1f}" '
                        f'endPos="{L:.1f}" period="3600" file="NUL"/>')
    dets.append("</additional>")
    (work / "x.det.xml").write_text("\n".join(dets))
    return {"vehicles": len(vehicles), "mean_flows": mean_flows}


def _lane_length(net: Path) -> dict[str, float]:
    out = {}
    for lane in ET.parse(net).getroot().iter("lane"):
        out[lane.get("id")] = float(lane.get("length"))
    return out


def _tls_states(net: Path) -> dict[str, str]:
    """Green state per phase id, from the links of the junction (lefts permissive: 'g')."""
    links: dict[int, tuple[str, str]] = {}
    for c in ET.parse(net).getroot().iter("connection"):
        if c.get("tl") == "C":
            links[int(c.get("linkIndex"))] = (c.get("from").split("_")[0], c.get("dir"))
    n = max(links) + 1
    states = {}
    for pid, arms in PHASES:
        states[pid] = "".join(("g" if links[i][1] == "l" else "G") if links[i][0] in arms else "r"
                              for i in range(n))
    return states


def _yellow(state: str) -> str:
    return "".join("y" if c in "Gg" else c for c in state)


def tls_program(work: Path, kind: str, greens: dict[str, float]) -> Path:
    """An additional file replacing the junction's program (static/actuated/delay_based)."""
    states = _tls_states(work / "x.net.xml")
    red = "r" * len(next(iter(states.values())))
    phases = []
    for pid, _ in PHASES:
        g = greens[pid]
        if kind == "static":
            phases.append(f'<phase duration="{g:.1f}" state="{states[pid]}"/>')
        else:
            phases.append(f'<phase duration="{g:.1f}" minDur="{MIN_GREEN}" maxDur="{MAX_GREEN}" '
                          f'state="{states[pid]}"/>')
        phases.append(f'<phase duration="{YELLOW}" state="{_yellow(states[pid])}"/>')
        phases.append(f'<phase duration="{ALL_RED}" state="{red}"/>')
    params = ""
    if kind == "actuated":
        params = '<param key="detector-gap" value="2.0"/><param key="max-gap" value="3.0"/>'
    path = work / f"tls_{kind}.add.xml"
    path.write_text(f'<additional><tlLogic id="C" type="{kind}" programID="eval" offset="0">{params}'
                    f'{"".join(phases)}</tlLogic></additional>')
    return path


def sumo_cmd(work: Path, seed: int, tag: str, extra: list[str], end: float) -> list[str]:
    return [sumo_bin("sumo"), "-n", str(work / "x.net.xml"), "-r", str(work / "x.rou.xml"),
            "--additional-files", ",".join(extra), "--seed", str(seed), "--step-length", "1",
            "--tripinfo-output", str(work / f"trip_{tag}.xml"), "--end", str(end),
            "--no-step-log", "true", "--no-warnings", "true", "--time-to-teleport", "300",
            "--duration-log.disable", "true"]


def tripinfo(path: Path) -> dict[str, float]:
    loss, dep, n = 0.0, 0.0, 0
    for _, el in ET.iterparse(path):
        if el.tag == "tripinfo":
            loss += float(el.get("timeLoss"))
            dep += float(el.get("departDelay"))
            n += 1
            el.clear()
    return {"vehicles": n, "delay_s": (loss + dep) / max(n, 1), "time_loss_s": loss / max(n, 1),
            "depart_delay_s": dep / max(n, 1)}


# ----------------------------------------------------------------------------- controller in the loop


class ControllerLoop:
    """The controller process in-process, on the simulation clock, fed like over MQTT."""

    def __init__(self, work: Path, actuation: bool):
        from edge_agent.controller.app import Controller
        from edge_agent.controller.config import parse_controller_config

        self.now = T0.timestamp()
        cfg = parse_controller_config(json.dumps(controller_config(work / f"ctl_{int(actuation)}.db", actuation)),
                                      work / "controller.yaml")
        self.ctl = Controller(cfg, connect=False, clock=lambda: self.now)
        assert self.ctl.decider is not None
        self.decider = self.ctl.decider
        self.prefix = cfg.mqtt.topic_prefix

    def stats(self, arm: str, start_s: float, length_s: float, vehicles: int) -> None:
        from edge_agent.messages import stats_payload, stats_topic
        from edge_agent.types import Direction, IntervalRecord, LineCounts

        cam = f"cam-{arm.lower()}"
        start = T0 + timedelta(seconds=start_s)
        rec = IntervalRecord(cam, start, start + timedelta(seconds=length_s), False,
                             (LineCounts("stop", {Direction.IN: {"car": vehicles} if vehicles else {},
                                                  Direction.OUT: {}}),), int(length_s * 10), 0, 10.0,
                             float(length_s))
        doc = stats_payload(rec, f"node-{cam}", ("car", "bus", "truck", "motorcycle"))
        self.ctl.ingestor.handle(stats_topic(self.prefix, cam), json.dumps(doc).encode(), self.now)

    def presence(self, arm: str, lanes: list[dict[str, Any]]) -> None:
        cam = f"cam-{arm.lower()}"
        doc = {"schema": "edge-agent/presence", "schema_version": 1, "camera_id": cam,
               "at": (T0 + timedelta(seconds=self.now - T0.timestamp())).isoformat().replace("+00:00", "Z"),
               "lanes": lanes}
        self.ctl.ingestor.handle(f"{self.prefix}/{cam}/presence", json.dumps(doc).encode(), self.now)

    def round(self) -> dict[str, Any] | None:
        """One decision round exactly as Controller._decide_loop runs it; the plan published, if any."""
        self.ctl.ingestor.flush(timeout=5)
        self.decider.run_round()
        return self.decider.latest["plan"].get("x4")

    def close(self) -> None:
        self.ctl.close()


def run_traci(work: Path, seed: int, policy: str, duration: float, end: float,
              initial_greens: dict[str, float]) -> dict[str, Any]:
    import traci
    import traci.constants as tc

    tag = policy
    traci.start(sumo_cmd(work, seed, tag, [str(work / "x.det.xml")], end), label=f"{tag}-{seed}",
                stdout=subprocess.DEVNULL)
    conn = traci.getConnection(f"{tag}-{seed}")
    loop = ControllerLoop(work, actuation=(policy == "controller"))
    states = _tls_states(work / "x.net.xml")
    red = "r" * len(next(iter(states.values())))
    lanes = [f"{a}_in_{ln}" for a in ARMS for ln in (0, 1)]
    for ln in lanes:
        conn.inductionloop.subscribe(f"loop_{ln}", [tc.LAST_STEP_VEHICLE_ID_LIST])
        conn.lanearea.subscribe(f"zone_{ln}", [tc.LAST_STEP_VEHICLE_NUMBER, tc.LAST_STEP_VEHICLE_HALTING_NUMBER])
        conn.lanearea.subscribe(f"near_{ln}", [tc.LAST_STEP_VEHICLE_NUMBER, tc.LAST_STEP_VEHICLE_HALTING_NUMBER])
    seen: dict[str, set[str]] = {ln: set() for ln in lanes}
    counts = dict.fromkeys(ARMS, 0)
    # fixed-time runner for the plan-only policy (and the actuator's own state machine otherwise)
    greens = dict(initial_greens)
    schedule: list[tuple[str, float]] = []
    seg_end = 0.0
    current_state = None
    plans = 0
    reasons: dict[str, int] = {}
    actuator = loop.decider.actuators.get("x4")
    if actuator is not None:
        actuator.set_plan(_plan_from_greens(loop, initial_greens))  # until the first plan from counts
        actuator.interval = type(actuator.interval)("ns", "green", loop.now, "start")
    t = 0.0
    try:
        while True:
            conn.simulationStep()
            t = conn.simulation.getTime()
            loop.now = T0.timestamp() + t
            res_loop = conn.inductionloop.getAllSubscriptionResults()
            for ln in lanes:
                ids = set(res_loop[f"loop_{ln}"][tc.LAST_STEP_VEHICLE_ID_LIST])
                counts[ln[0]] += len(ids - seen[ln])
                seen[ln] = ids
            if t % 60 == 0 and t <= duration:
                for arm in ARMS:
                    loop.stats(arm, t - 60, 60, counts[arm])
                    counts[arm] = 0
                plan = loop.round()
                if plan is not None:
                    plans += 1
                    greens = {p["id"]: p["green_s"] for p in plan["phases"]}
            if actuator is not None:
                zone = conn.lanearea.getAllSubscriptionResults()
                for arm in ARMS:
                    loop.presence(arm, [{"lane_id": f"{arm}_in_{ln}",
                                         "vehicles": zone[f"zone_{arm}_in_{ln}"][tc.LAST_STEP_VEHICLE_NUMBER],
                                         "queue_veh": zone[f"zone_{arm}_in_{ln}"][tc.LAST_STEP_VEHICLE_HALTING_NUMBER],
                                         "near_veh": _moving(zone[f"near_{arm}_in_{ln}"])}
                                        for ln in (0, 1)])
                changed = loop.decider.tick_phases(loop.now)
                if "x4" in changed:
                    reasons[changed["x4"].reason] = reasons.get(changed["x4"].reason, 0) + 1
                iv = actuator.interval
                state = states[iv.phase] if iv.kind == "green" else (
                    _yellow(states[iv.phase]) if iv.kind == "yellow" else red)
            else:
                if t >= seg_end:
                    if not schedule:
                        for pid, _ in PHASES:
                            schedule += [(states[pid], greens[pid]), (_yellow(states[pid]), YELLOW),
                                         (red, ALL_RED)]
                    st, dur = schedule.pop(0)
                    seg_end = t + dur
                    state = st
                else:
                    state = current_state
            if state != current_state:
                conn.trafficlight.setRedYellowGreenState("C", state)
                current_state = state
            if t >= duration and conn.simulation.getMinExpectedNumber() == 0:
                break
            if t >= end:
                break
    finally:
        conn.close()
        loop.close()
    return {"plans": plans, "reasons": reasons}


def _moving(res: dict[int, int]) -> int:
    import traci.constants as tc

    return res[tc.LAST_STEP_VEHICLE_NUMBER] - res[tc.LAST_STEP_VEHICLE_HALTING_NUMBER]


def _plan_from_greens(loop: ControllerLoop, greens: dict[str, float]) -> Any:
    from edge_agent.controller.signals import SignalPlanner

    plan = SignalPlanner(loop.ctl.cfg.intersections[0]).plan(dict.fromkeys([a.lower() for a in ARMS], None))
    for ph in plan.phases:
        ph.green_s = greens[ph.id]
    return plan


def fixed_greens(mean_flows: dict[str, float]) -> tuple[dict[str, float], float]:
    """Webster's plan for the true mean flows (what the fixed-time policy runs), via the controller's planner."""
    from edge_agent.controller.config import IntersectionConfig
    from edge_agent.controller.signals import SignalPlanner

    inter = controller_config(Path("unused.db"), False)["intersections"][0]
    plan = SignalPlanner(IntersectionConfig.model_validate(inter)).plan({a.lower(): f for a, f in mean_flows.items()})
    return {p.id: p.green_s for p in plan.phases}, plan.cycle_s


def run_seed(seed: int, duration: float, base: float, peak: float, policies: list[str],
             keep: Path | None = None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"sumo-eval-{seed}-", dir=keep))
    try:
        scen = build(work, seed, duration, base, peak)
        greens, cycle = fixed_greens(scen["mean_flows"])
        end = duration + 1800
        out: dict[str, Any] = {"seed": seed, "vehicles": scen["vehicles"],
                               "fixed_plan": {"greens_s": greens, "cycle_s": round(cycle, 1)}, "policies": {}}
        for pol in policies:
            t0 = time.perf_counter()
            extra: dict[str, Any] = {}
            if pol in ("fixed", "actuated", "delay_based"):
                kind = "static" if pol == "fixed" else pol
                add = tls_program(work, kind, greens)
                subprocess.run(sumo_cmd(work, seed, pol, [str(work / "x.det.xml"), str(add)], end),
                               check=True, capture_output=True)
            else:
                extra = run_traci(work, seed, pol, duration, end, greens)
            res = tripinfo(work / f"trip_{pol}.xml")
            res.update(extra)
            res["wall_s"] = round(time.perf_counter() - t0, 1)
            out["policies"][pol] = res
        return out
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="number of seeds (1..N)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=3600, help="demand period in simulated seconds")
    ap.add_argument("--base", type=float, default=350, help="base flow per arm, veh/h")
    ap.add_argument("--peak", type=float, default=650, help="moving peak added on top, veh/h")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--actuation", type=json.loads, default={},
                    help='JSON overrides of the intersection\'s actuation section, e.g. \'{"max_green_factor": 2}\'')
    ap.add_argument("--near-m", type=float, default=NEAR_M, help="extension zone before the stop line, m")
    ap.add_argument("--json", type=Path, help="write all results here")
    ap.add_argument("--keep", type=Path, help="keep the SUMO files under this folder")
    args = ap.parse_args(argv)
    SETTINGS["near_m"] = args.near_m
    ACTUATION.update(args.actuation)
    policies = [p for p in args.policies.split(",") if p]
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        ap.error(f"unknown policies {bad}; known: {', '.join(POLICIES)}")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    import logging

    logging.basicConfig(level=logging.ERROR)  # the controller's anomaly alerts would flood the table
    os.environ.setdefault("SUMO_HOME", str(Path(sumo_bin("sumo")).parents[1]))
    results = []
    t0 = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = run_seed(seed, args.duration, args.base, args.peak, policies, args.keep)
        results.append(r)
        row = "  ".join(f"{p}={r['policies'][p]['delay_s']:.1f}" for p in policies)
        print(f"seed {seed}: {r['vehicles']} vehicles  {row}", flush=True)
    print()
    print(f"Mean delay per vehicle (s; time loss + insertion delay), {args.duration:.0f} s of demand, "
          f"base {args.base:.0f} + moving peak {args.peak:.0f} veh/h per arm")
    head = f"{'seed':>4} {'veh':>5} " + " ".join(f"{p:>12}" for p in policies)
    cmp_to = [p for p in ("actuated", "delay_based") if p in policies]
    if "controller" in policies:
        head += "  " + " ".join(f"{'ctl-' + p[:5]:>10}" for p in cmp_to)
    print(head)
    wins = dict.fromkeys(cmp_to, 0)
    for r in results:
        d = {p: r["policies"][p]["delay_s"] for p in policies}
        line = f"{r['seed']:>4} {r['vehicles']:>5} " + " ".join(f"{d[p]:>12.2f}" for p in policies)
        if "controller" in policies:
            line += "  " + " ".join(f"{d['controller'] - d[p]:>+10.2f}" for p in cmp_to)
            for p in cmp_to:
                wins[p] += d["controller"] < d[p]
        print(line)
    means = {p: float(np.mean([r["policies"][p]["delay_s"] for r in results])) for p in policies}
    print(f"{'mean':>4} {'':>5} " + " ".join(f"{means[p]:>12.2f}" for p in policies))
    if "controller" in policies:
        for p in cmp_to:
            print(f"controller better than {p} on {wins[p]}/{len(results)} seeds")
    print(f"wall {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "mean_delay_s": means,
                                         "controller_wins": wins if "controller" in policies else None},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
