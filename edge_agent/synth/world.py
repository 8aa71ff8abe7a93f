"""The road layout, the routes, a fixed-time signal, and the traffic simulation (metres and seconds).

A four-arm intersection of two two-lane roads (one lane each way, right-hand
traffic), centred on the origin: x east, y north. Arms are named by the
compass direction they point to from the centre (``N``, ``E``, ``S``, ``W``);
a vehicle's movement is ``origin -> destination`` arm, e.g. ``S -> E`` is a
right turn from the south approach.

Along each arm, measured from the centre (``r``)::

      0 ......... 7 ...... 7.5 ==== 10.5 .. 11 ............ far
      junction box   crosswalk (zebra)   stop line     approach
                     lanes 3.5 m wide, sidewalks from 3.5 to 6.5 m off the centre line

Vehicles follow the Intelligent Driver Model (IDM) behind their leader, with a
speed cap from the curvature of turns and a virtual stopped leader at the stop
line while their signal is red (or amber when they can still stop). Their
speeds are therefore known exactly at every step; positions are integrated
along the route's arc length. Pedestrians walk at constant speed along
sidewalks and crosswalks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

LANE_W = 3.5            # lane width; the carriageway is 2 lanes = 7 m wide
SIDEWALK_IN = 3.5       # sidewalk from the curb ...
SIDEWALK_OUT = 6.5      # ... to here (off the centre line)
BOX = 7.0               # junction box half-size: turns start and end here
CROSS_NEAR, CROSS_FAR = 7.5, 10.5   # crosswalk band along each arm
STOP_R = 11.0           # stop line
FAR_R = 75.0            # where routes start and end
PED_FAR_R = 45.0
PED_OFFSET = 5.0        # pedestrians walk this far off the centre line

ARMS: dict[str, tuple[float, float]] = {"N": (0.0, 1.0), "E": (1.0, 0.0), "S": (0.0, -1.0), "W": (-1.0, 0.0)}
PHASE_OF_ARM = {"N": 0, "S": 0, "E": 1, "W": 1}
VEHICLE_CLASSES = ("car", "motorcycle", "bus", "truck")


def _right_of(h: F64) -> F64:
    """Unit vector to the right of heading h on the ground (x east, y north)."""
    return np.array([h[1], -h[0]])


def arm_dir(arm: str) -> F64:
    return np.asarray(ARMS[arm], np.float64)


def inbound_point(arm: str, r: float) -> F64:
    """Centre of the inbound lane of ``arm`` at distance r from the centre."""
    d = arm_dir(arm)
    return d * r + _right_of(-d) * (LANE_W / 2)


def outbound_point(arm: str, r: float) -> F64:
    d = arm_dir(arm)
    return d * r + _right_of(d) * (LANE_W / 2)


class Route:
    """A polyline on the ground resampled every ``ds`` metres, with arc length, heading and a speed cap.

    Attributes:
        xy: (n, 2) points, metres.
        s: (n,) arc length at each point.
        heading: (n,) unwrapped heading, radians (0 = east, pi/2 = north).
        vcap: (n,) highest comfortable speed at each point (curvature and braking ahead), m/s.

    """

    def __init__(self, points: F64, radius: F64 | None = None, ds: float = 0.25,
                 lat_acc: float = 2.0, brake: float = 2.0):
        pts = np.asarray(points, np.float64)
        seg = np.hypot(*np.diff(pts, axis=0).T)
        s_raw = np.concatenate([[0.0], np.cumsum(seg)])
        self.length = float(s_raw[-1])
        n = max(int(math.ceil(self.length / ds)) + 1, 2)
        self.s = np.linspace(0.0, self.length, n)
        self.xy = np.column_stack([np.interp(self.s, s_raw, pts[:, 0]), np.interp(self.s, s_raw, pts[:, 1])])
        d = np.gradient(self.xy, axis=0)
        self.heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        rad = np.full(n, np.inf) if radius is None else np.interp(self.s, s_raw, radius)
        cap = np.sqrt(lat_acc * rad)
        step = self.length / (n - 1)
        for i in range(n - 2, -1, -1):   # braking ahead of a turn
            cap[i] = min(cap[i], math.sqrt(cap[i + 1] ** 2 + 2 * brake * step))
        self.vcap = cap

    def at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at arc length s (clamped to the route)."""
        s = min(max(s, 0.0), self.length)
        return (float(np.interp(s, self.s, self.xy[:, 0])), float(np.interp(s, self.s, self.xy[:, 1])),
                float(np.interp(s, self.s, self.heading)))

    def cap_at(self, s: float) -> float:
        return float(np.interp(s, self.s, self.vcap))


@dataclass(frozen=True)
class VehicleRoute:
    origin: str
    destination: str
    route: Route
    s_stop: float        # arc length of the stop line (front bumper stops here)
    s_entry: float       # start of the junction box
    s_exit: float        # end of the junction box

    @property
    def turn(self) -> str:
        order = "NESW"
        k = (order.index(self.destination) - order.index(self.origin)) % 4
        return {2: "through", 1: "left", 3: "right"}[k]


def vehicle_route(origin: str, destination: str) -> VehicleRoute:
    """The lane-following path from the far end of ``origin``'s approach to the far end of ``destination``."""
    if origin == destination or origin not in ARMS or destination not in ARMS:
        raise ValueError(f"no route {origin} -> {destination}")
    start, entry = inbound_point(origin, FAR_R), inbound_point(origin, BOX)
    exit_, end = outbound_point(destination, BOX), outbound_point(destination, FAR_R)
    h1, h2 = -arm_dir(origin), arm_dir(destination)
    if abs(float(h1 @ h2) - 1.0) < 1e-9:      # through
        mid = np.array([entry, exit_])
        mid_r = np.full(2, np.inf)
    else:                                       # quarter circle tangent to both lanes
        along = float((exit_ - entry) @ h2)
        centre = entry + h2 * along
        radius = abs(along)
        a0 = math.atan2(*(entry - centre)[::-1])
        a1 = math.atan2(*(exit_ - centre)[::-1])
        da = (a1 - a0 + math.pi) % (2 * math.pi) - math.pi
        ang = a0 + da * np.linspace(0, 1, 24)
        mid = centre + radius * np.column_stack([np.cos(ang), np.sin(ang)])
        mid_r = np.full(len(mid), radius)
    pts = np.vstack([start, mid, end])
    route = Route(pts, np.concatenate([[np.inf], mid_r, [np.inf]]))
    s_entry = FAR_R - BOX
    s_exit = route.length - (FAR_R - BOX)
    return VehicleRoute(origin, destination, route, FAR_R - STOP_R, s_entry, s_exit)


def pedestrian_routes() -> list[Route]:
    """Walks along sidewalks and over crosswalks (both ways), each starting and ending off-screen or far away."""
    routes = []
    order = "NESW"
    for arm in order:
        d = arm_dir(arm)
        n = _right_of(d)
        for side in (1.0, -1.0):
            far = d * PED_FAR_R + n * side * PED_OFFSET
            cw = d * ((CROSS_NEAR + CROSS_FAR) / 2) + n * side * PED_OFFSET
            cw_other = d * ((CROSS_NEAR + CROSS_FAR) / 2) - n * side * PED_OFFSET
            far_other = d * PED_FAR_R - n * side * PED_OFFSET
            routes.append(np.array([far, cw, cw_other, far_other]))          # cross this arm
            # round the corner onto the neighbouring arm on this side
            other = next(a for a in order if np.allclose(arm_dir(a), n * side))
            d2 = arm_dir(other)
            n2_side = float(np.sign(_right_of(d2) @ d))
            corner = (d + d2) * PED_OFFSET
            far2 = d2 * PED_FAR_R + _right_of(d2) * n2_side * PED_OFFSET
            routes.append(np.array([far, corner, far2]))
    both = routes + [r[::-1] for r in routes]
    return [Route(r) for r in both]


@dataclass(frozen=True)
class SignalPlan:
    """Two-phase fixed-time signal: N-S green, amber, all red, E-W green, amber, all red."""

    green_s: float = 18.0
    amber_s: float = 3.0
    all_red_s: float = 2.0
    offset_s: float = 0.0

    @property
    def cycle_s(self) -> float:
        return 2 * (self.green_s + self.amber_s + self.all_red_s)

    def state(self, arm: str, t: float) -> str:
        """``G``, ``A`` or ``R`` for the approach ``arm`` at time t."""
        half = self.green_s + self.amber_s + self.all_red_s
        tc = (t + self.offset_s) % self.cycle_s
        phase = 0 if tc < half else 1
        if phase != PHASE_OF_ARM[arm]:
            return "R"
        tp = tc - phase * half
        return "G" if tp < self.green_s else "A" if tp < self.green_s + self.amber_s else "R"


@dataclass
class Agent:
    """A road user in the simulation.

    ``s`` is the arc length of the agent's centre along its route; for a
    vehicle the front bumper is at ``s + length / 2``.
    """

    uid: int
    kind: str                 # person, car, motorcycle, bus, truck
    shape: dict[str, object]  # drawing parameters (see shapes.py)
    route: Route
    length: float
    v: float
    v0: float
    s: float = 0.0
    vroute: VehicleRoute | None = None
    walked: float = 0.0       # pedestrians: distance walked (leg phase)
    born: float = 0.0
    done: bool = False
    history: list[tuple[int, float, float, float, float]] = field(default_factory=list)  # frame, x, y, heading, v

    def pose(self) -> tuple[float, float, float]:
        return self.route.at(self.s)


@dataclass(frozen=True)
class TrafficConfig:
    """Demand and behaviour of the simulation.

    Attributes:
        vehicles_per_hour: arrivals per approach (Poisson).
        pedestrians_per_hour: arrivals over the whole scene (Poisson).
        class_mix: probability of each vehicle class.
        turn_mix: probability of (through, left, right).

    """

    vehicles_per_hour: float = 420.0
    pedestrians_per_hour: float = 300.0
    class_mix: tuple[tuple[str, float], ...] = (("car", 0.62), ("motorcycle", 0.16), ("bus", 0.1), ("truck", 0.12))
    turn_mix: tuple[float, float, float] = (0.6, 0.2, 0.2)
    signal: SignalPlan = field(default_factory=SignalPlan)


DESIRED_SPEED = {"car": (10.0, 14.0), "motorcycle": (10.0, 15.0), "bus": (8.0, 11.0), "truck": (8.0, 11.5)}
IDM_A = {"car": 1.8, "motorcycle": 2.5, "bus": 1.0, "truck": 1.0}
IDM_B = 2.0      # comfortable deceleration
IDM_S0 = 2.0     # jam gap, m
IDM_T = 1.3      # time headway, s
MAX_DECEL = 7.0


class Simulation:
    """Spawns, moves and retires agents on a fixed time step.

    Args:
        rng: the only source of randomness (seeded by the caller).
        traffic: demand and signal.
        dt: time step, seconds.
        make_shape: ``(kind, rng) -> (shape dict, length, width)``.

    """

    def __init__(self, rng: np.random.Generator, traffic: TrafficConfig, dt: float,
                 make_shape: object) -> None:
        self.rng = rng
        self.traffic = traffic
        self.dt = dt
        self.make_shape = make_shape
        self.t = 0.0
        self.agents: list[Agent] = []
        self.finished: list[Agent] = []   # retired agents, with their history
        self._next_uid = 1
        self.routes = {(o, d): vehicle_route(o, d) for o in ARMS for d in ARMS if o != d}
        self.ped_routes = pedestrian_routes()
        rate_v = traffic.vehicles_per_hour / 3600
        self._next_vehicle = {a: self.rng.exponential(1 / rate_v) if rate_v > 0 else math.inf for a in ARMS}
        rate_p = traffic.pedestrians_per_hour / 3600
        self._next_ped = self.rng.exponential(1 / rate_p) if rate_p > 0 else math.inf

    # -- spawning ---------------------------------------------------------------------------------------------
    def _pick_class(self) -> str:
        names = [c for c, _ in self.traffic.class_mix]
        p = np.array([w for _, w in self.traffic.class_mix], np.float64)
        return str(names[int(self.rng.choice(len(names), p=p / p.sum()))])

    def _pick_destination(self, origin: str) -> str:
        order = "NESW"
        i = order.index(origin)
        through, left, right = order[(i + 2) % 4], order[(i + 1) % 4], order[(i + 3) % 4]
        p = np.asarray(self.traffic.turn_mix, np.float64)
        return [through, left, right][int(self.rng.choice(3, p=p / p.sum()))]

    def _spawn_vehicles(self) -> None:
        rate = self.traffic.vehicles_per_hour / 3600
        for arm in "NESW":
            if self.t < self._next_vehicle[arm]:
                continue
            kind = self._pick_class()
            shape, length, _ = self.make_shape(kind, self.rng)  # type: ignore[operator]
            last = [a for a in self.agents if a.vroute is not None and a.vroute.origin == arm
                    and a.s < a.vroute.s_entry + 5]
            tail = min((a.s - a.length / 2 for a in last), default=math.inf)
            if tail < length + IDM_S0 + 2.0:
                self._next_vehicle[arm] = self.t + 0.5     # approach blocked: try again shortly
                continue
            vr = self.routes[(arm, self._pick_destination(arm))]
            lo, hi = DESIRED_SPEED[kind]
            v0 = float(self.rng.uniform(lo, hi))
            v = min(v0, max(0.0, (tail - length / 2 - IDM_S0) / 2.0)) if tail < math.inf else v0
            self.agents.append(Agent(self._next_uid, kind, shape, vr.route, length, v, v0,
                                     s=length / 2, vroute=vr, born=self.t))
            self._next_uid += 1
            self._next_vehicle[arm] = self.t + self.rng.exponential(1 / rate)

    def _spawn_pedestrians(self) -> None:
        rate = self.traffic.pedestrians_per_hour / 3600
        while self.t >= self._next_ped:
            route = self.ped_routes[int(self.rng.integers(len(self.ped_routes)))]
            shape, length, _ = self.make_shape("person", self.rng)  # type: ignore[operator]
            v = float(self.rng.uniform(1.0, 1.7))
            self.agents.append(Agent(self._next_uid, "person", shape, route, length, v, v, born=self.t,
                                     walked=float(self.rng.uniform(0, 2))))
            self._next_uid += 1
            self._next_ped += self.rng.exponential(1 / rate)

    # -- motion -----------------------------------------------------------------------------------------------
    def _gap_to_leader(self, a: Agent, vr: VehicleRoute) -> tuple[float, float]:
        """Bumper gap and speed of the nearest vehicle ahead in the same lane (or the stop line)."""
        front = a.s + a.length / 2
        gap, lead_v = math.inf, 0.0
        for b in self.agents:
            if b is a or b.vroute is None or b.done:
                continue
            bv = b.vroute
            g = math.inf
            if bv.origin == vr.origin and b.s > a.s and b.s < bv.s_entry + 10 and a.s < vr.s_exit:
                g = (b.s - b.length / 2) - front
            elif bv.destination == vr.destination and a.s > vr.s_entry - 3:
                ua, ub = a.s - vr.s_exit, b.s - bv.s_exit
                if ub > ua and ub > -3:
                    g = (ub - b.length / 2) - (ua + a.length / 2)
            if g < gap:
                gap, lead_v = g, b.v
        state = self.traffic.signal.state(vr.origin, self.t)
        to_stop = vr.s_stop - front
        if state != "G" and to_stop > -0.5:
            can_stop = state == "R" or to_stop > a.v * a.v / (2 * IDM_B * 1.5)
            if can_stop and to_stop + IDM_S0 < gap:   # the stop line acts as a stopped leader
                gap, lead_v = max(to_stop + IDM_S0 - 0.3, 0.01), 0.0
        return gap, lead_v

    def step(self, frame: int | None = None) -> None:
        """Advance the simulation by dt; with a frame index, record each agent's state before moving."""
        self._spawn_vehicles()
        self._spawn_pedestrians()
        dt = self.dt
        accel = {}
        for a in self.agents:
            if a.vroute is None:
                continue
            v0 = min(a.v0, a.route.cap_at(a.s + a.length / 2))
            gap, lead_v = self._gap_to_leader(a, a.vroute)
            amax = IDM_A[a.kind]
            s_star = IDM_S0 + max(0.0, a.v * IDM_T + a.v * (a.v - lead_v) / (2 * math.sqrt(amax * IDM_B)))
            free = 1 - (a.v / max(v0, 0.1)) ** 4
            inter = (s_star / max(gap, 0.01)) ** 2 if gap < math.inf else 0.0
            accel[a.uid] = max(-MAX_DECEL, amax * (free - inter))
        for a in self.agents:
            if frame is not None:
                x, y, h = a.pose()
                a.history.append((frame, x, y, h, a.v))
            if a.vroute is None:
                a.s += a.v * dt
                a.walked += a.v * dt
            else:
                acc = accel[a.uid]
                v_new = max(0.0, a.v + acc * dt)
                a.s += (a.v + v_new) / 2 * dt
                a.v = v_new
            if a.s + (a.length / 2 if a.vroute else 0.0) >= a.route.length:
                a.done = True
        self.finished.extend(a for a in self.agents if a.done)
        self.agents = [a for a in self.agents if not a.done]
        self.t += dt
