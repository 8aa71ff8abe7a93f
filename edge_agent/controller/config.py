"""YAML configuration of the central controller, validated into typed models.

Same conventions and the same parsing as the camera node's :mod:`edge_agent.config`
(``read_yaml``, ``validate_model``): every section refuses unknown keys, and errors read
``line N: yaml.path[0].field: problem, got VALUE``.

A *line reference* ``{camera, line, direction}`` names one counting line of one
camera node and which direction(s) of it carry the traffic of interest; the
controller sums ``vehicles`` (converted to veh/h over ``observed_s``) of the
referenced lines.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config import (
    ID_PATTERN,
    ConfigError,
    MQTTConfig,
    Section,
    _check_unique,
    read_config_text,
    read_yaml,
    validate_model,
)

Direction = Literal["in", "out", "both"]


class LineRef(Section):
    """One counting line of one camera, and which crossing direction(s) to count."""

    camera: str = Field(pattern=ID_PATTERN, description="camera id of the node (second topic level)")
    line: str = Field(pattern=ID_PATTERN, description="line id in that camera's configuration")
    direction: Direction = Field("in", description="in, out or both")


class ControllerMQTT(MQTTConfig):
    client_id: str = Field("controller", pattern=ID_PATTERN,
                           description="MQTT client id; give each replica its own")
    share_group: str | None = Field(
        "controllers", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT 5 shared-subscription group ($share/<group>/...); replicas in one group split the "
                    "messages; null subscribes plainly (every replica gets every message)")
    qos: Literal[0, 1, 2] = Field(1, description="subscription QoS for statistics, events and status")
    session_expiry_s: int = Field(
        3600, ge=0, le=2**32 - 1,
        description="seconds the broker keeps this replica's session (subscriptions, messages not yet "
                    "acknowledged, messages queued while it is away) after a disconnect; messages are "
                    "acknowledged only once stored, so a replica restarted with the same client_id within this "
                    "time gets back what it had not stored. 0: a clean session at every connect")


class StoreConfig(Section):
    sqlite: Path = Field(Path("controller.db"), description="SQLite file (WAL mode), relative to the YAML file")
    postgres_url_env: str | None = Field(
        None, description="environment variable holding a postgresql:// URL; when set, PostgreSQL is used "
                          "instead of SQLite (the URL stays out of the YAML because it may hold a password)")
    batch_max: int = Field(500, ge=1, le=100000, description="most messages written in one transaction")
    linger_ms: float = Field(
        50.0, ge=0, le=1000, description="group commit: while statistics keep arriving, wait up to this long for "
                                         "more before committing (one transaction costs about as much as 15 "
                                         "messages' rows); 0 commits whatever is queued at once")


class ControlConfig(Section):
    decide: bool = Field(True, description="make decisions on this replica; with several replicas, turn it on "
                                           "for one (all of them ingest)")
    period_s: float = Field(60.0, gt=0, le=3600, description="seconds between two decision rounds")
    flow_intervals: int = Field(
        3, ge=1, le=100, description="the flow of a line is the mean over its last N statistics intervals")
    stale_after_s: float = Field(
        900.0, gt=0, description="flows received longer ago than this are not used for decisions")
    plan_validity_s: float | None = Field(
        None, gt=0, description="validity window of published plans; default 2 x period_s")


class HealthConfig(Section):
    silent_after_intervals: float = Field(
        3.0, gt=0, le=1000, description="a camera is silent after this many of its intervals without statistics")
    silent_after_s_min: float = Field(30.0, ge=0, description="but never before this many seconds")


class PhaseConfig(Section):
    id: str = Field(pattern=ID_PATTERN)
    approaches: list[str] = Field(min_length=1, description="approach ids that move during this phase")
    yellow_s: float = Field(3.0, ge=0, le=10)
    all_red_s: float = Field(2.0, ge=0, le=10)
    min_green_s: float = Field(7.0, ge=0, le=300)
    max_green_s: float = Field(90.0, gt=0, le=600)
    pedestrian_min_s: float = Field(0.0, ge=0, le=120, description="minimum display green for the crossing walkers")

    @model_validator(mode="after")
    def _greens(self) -> PhaseConfig:
        if self.min_green_s > self.max_green_s:
            raise ValueError(f"min_green_s {self.min_green_s} is above max_green_s {self.max_green_s}")
        if self.pedestrian_min_s > self.max_green_s:
            raise ValueError(f"pedestrian_min_s {self.pedestrian_min_s} is above max_green_s {self.max_green_s}")
        return self


class ApproachConfig(Section):
    """A lane group: lanes that move together and are fed by the same counting lines."""

    id: str = Field(pattern=ID_PATTERN)
    lanes: int = Field(1, ge=1, le=10)
    saturation_flow_veh_h_lane: float = Field(1800.0, gt=0, le=3000, description="per lane, veh/h of green")
    flows: list[LineRef] = Field(min_length=1, description="counting lines whose vehicles enter this lane group")
    presence: list[str] = Field(default_factory=list,
                                description="lane ids of the presence messages (camera:lane) on this approach")


class ActuationConfig(Section):
    """Second-by-second gap-out/extension within Webster's bounds, from presence messages (actuation.py)."""

    enabled: bool = Field(True, description="run the presence-driven phase control for this intersection")
    tick_s: float = Field(0.5, gt=0, le=5, description="seconds between two decisions")
    max_green_factor: float = Field(
        1.5, ge=1, le=5, description="a green ends at Webster's green x this (within min/max_green_s)")
    gap_out_veh: int = Field(0, ge=0, description="end the green once the served lanes have at most this many "
                                                  "vehicles in their extension zones (near_veh)")
    queue_weight: float = Field(1.0, ge=0, description="weight of a stopped vehicle in a phase's demand")
    queue_per_extending_veh: float | None = Field(
        4.0, gt=0, description="also end the green (after min green) when another phase has more than this many "
                                "stopped vehicles per vehicle it still serves (extending or queued); null: off")
    extension_zone_s: float | None = Field(
        2.5, gt=0, description="seconds a vehicle takes through the extension zone (zone length / speed); when "
                                "set, the green also ends once the delay it saves (extending vehicles x the red "
                                "they would wait: intergreens + the next phase's queue-clearance time) is less "
                                "than the delay it costs the vehicles of the next phase")
    rest_in_green: bool = Field(True, description="keep the green while no other phase has demand")
    stale_after_s: float = Field(3.0, gt=0, description="presence older than this: fall back to Webster's "
                                                        "fixed greens")


class IntersectionConfig(Section):
    id: str = Field(pattern=ID_PATTERN)
    min_cycle_s: float = Field(40.0, gt=0, le=600)
    max_cycle_s: float = Field(150.0, gt=0, le=600)
    startup_lost_s: float = Field(2.0, ge=0, le=10, description="start-up lost time per phase")
    extension_s: float = Field(2.0, ge=0, le=10, description="part of yellow used as green (end gain)")
    max_degree_of_saturation: float = Field(
        0.9, gt=0.3, lt=1.0, description="over-saturation guard: Y above this is capped and the plan flagged")
    approaches: list[ApproachConfig] = Field(min_length=1)
    phases: list[PhaseConfig] = Field(min_length=2)
    actuation: ActuationConfig | None = Field(
        None, description="presence-driven phase control (needs presence lanes on the approaches); null: off")

    @model_validator(mode="after")
    def _references(self) -> IntersectionConfig:
        if self.min_cycle_s > self.max_cycle_s:
            raise ValueError(f"min_cycle_s {self.min_cycle_s} is above max_cycle_s {self.max_cycle_s}")
        _check_unique([a.id for a in self.approaches], "approach id")
        _check_unique([p.id for p in self.phases], "phase id")
        known = [a.id for a in self.approaches]
        served: set[str] = set()
        for p in self.phases:
            for a in p.approaches:
                if a not in known:
                    raise ValueError(f"phase {p.id!r} names approach {a!r}, which is not defined; "
                                     f"approaches: {', '.join(known)}")
                served.add(a)
        unserved = [a for a in known if a not in served]
        if unserved:
            raise ValueError(f"approach(es) {', '.join(unserved)} are in no phase; every approach needs a green")
        if self.actuation is not None and self.actuation.enabled:
            bare = [a.id for a in self.approaches if not a.presence]
            if bare:
                raise ValueError(f"actuation needs presence lanes on every approach; none on {', '.join(bare)}")
            for a in self.approaches:
                for ln in a.presence:
                    if ln.count(":") != 1 or not all(ln.split(":")):
                        raise ValueError(f"approach {a.id}: presence lane {ln!r} is not 'camera:lane'")
        return self


class DimStep(Section):
    min_flow_veh_h: float = Field(ge=0, description="from this flow up ...")
    level: float = Field(gt=0, le=1, description="... the lights burn at this fraction of full power")


class SegmentConfig(Section):
    id: str = Field(pattern=ID_PATTERN)
    flows: list[LineRef] = Field(min_length=1)
    rated_power_w: float = Field(gt=0, le=1e7, description="power of the segment's lamps at level 1.0")
    steps: list[DimStep] = Field(
        default_factory=lambda: [DimStep(min_flow_veh_h=0, level=0.3), DimStep(min_flow_veh_h=60, level=0.6),
                                 DimStep(min_flow_veh_h=300, level=1.0)],
        min_length=1, description="ascending min_flow_veh_h; the first must start at 0")
    hysteresis_veh_h: float = Field(20.0, ge=0, description="go down a step only below its threshold minus this")
    min_level: float = Field(0.2, ge=0, le=1, description="never dim below this (lighting class minimum)")

    @model_validator(mode="after")
    def _steps(self) -> SegmentConfig:
        flows = [s.min_flow_veh_h for s in self.steps]
        if flows[0] != 0:
            raise ValueError(f"the first step must have min_flow_veh_h 0 so that every flow has a level, "
                             f"got {flows[0]}")
        if any(b <= a for a, b in zip(flows, flows[1:])):
            raise ValueError(f"steps must have strictly ascending min_flow_veh_h, got {flows}")
        return self


class LightingConfig(Section):
    segments: list[SegmentConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> LightingConfig:
        _check_unique([s.id for s in self.segments], "segment id")
        return self


class Coefficients(Section):
    """Utility V = asc + travel_time_min*t + occupancy*o + distance_km*d (per option)."""

    travel_time_min: float = Field(-0.10, description="per minute of travel")
    occupancy: float = Field(-2.0, description="per unit of occupancy (0 empty .. 1 full)")
    distance_km: float = Field(-0.30, description="per km")


class OccupancyConfig(Section):
    entry: LineRef
    exit: LineRef


class ServiceOption(Section):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    distance_km: float = Field(ge=0)
    free_flow_min: float = Field(gt=0, description="travel time without traffic")
    route: list[LineRef] = Field(default_factory=list, description="lines whose flow loads the access route")
    route_capacity_veh_h: float = Field(1800.0, gt=0)
    capacity: int | None = Field(None, ge=1, description="places (car park spaces); needed for occupancy")
    occupancy: OccupancyConfig | None = Field(None, description="entry/exit lines that count the occupants")
    asc: float = Field(0.0, description="alternative-specific constant of the utility")

    @model_validator(mode="after")
    def _occupancy_capacity(self) -> ServiceOption:
        if self.occupancy is not None and self.capacity is None:
            raise ValueError("occupancy needs capacity (the number of places)")
        return self


class AreaConfig(Section):
    id: str = Field(pattern=ID_PATTERN)
    coefficients: Coefficients = Field(default_factory=Coefficients)  # type: ignore[arg-type]
    fit_min_choices: int | None = Field(
        None, ge=10, description="refit the coefficients by maximum likelihood once this many observed choices "
                                 "(topic {prefix}/services/{area}/choice) are stored; null keeps them fixed")
    options: list[ServiceOption] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique(self) -> AreaConfig:
        _check_unique([o.id for o in self.options], "option id")
        return self


class ServicesConfig(Section):
    areas: list[AreaConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ServicesConfig:
        _check_unique([a.id for a in self.areas], "area id")
        return self


class AnomalyConfig(Section):
    z_threshold: float = Field(3.0, gt=0, description="|z| at or above raises an alert")
    min_samples: int = Field(8, ge=2, description="samples of a baseline before it may raise alerts")
    bin_minutes: int = Field(60, ge=1, le=1440, description="time-of-day bin of the baselines")
    min_std_veh_h: float = Field(10.0, ge=0, description="floor of the standard deviation (quiet lines)")

    @field_validator("bin_minutes")
    @classmethod
    def _divides_day(cls, v: int) -> int:
        if 1440 % v:
            raise ValueError("expected a divisor of 1440 (e.g. 15, 30, 60)")
        return v


class TokenConfig(Section):
    name: str = Field(min_length=1)
    scope: Literal["read", "operator"]
    token_env: str | None = Field(None, description="environment variable holding the token")
    token_file: Path | None = Field(None, description="file whose first line is the token")

    @model_validator(mode="before")
    @classmethod
    def _no_token_in_yaml(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise ValueError("'token' is not allowed in the YAML file; use token_env or token_file")
        return data

    @model_validator(mode="after")
    def _one_source(self) -> TokenConfig:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("give exactly one of token_env and token_file")
        return self

    def secret(self) -> str:
        if self.token_env is not None:
            value = os.environ.get(self.token_env)
            if not value:
                raise ConfigError("<environment>", [f"http.tokens[{self.name}].token_env: environment variable "
                                                    f"{self.token_env!r} is not set or empty"])
            return value
        assert self.token_file is not None
        lines = self.token_file.read_text().splitlines()
        if not lines or not lines[0].strip():
            raise ConfigError(str(self.token_file), [f"http.tokens[{self.name}].token_file: the file is empty"])
        return lines[0].strip()


class HTTPConfig(Section):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="listen address; anything but loopback requires tokens")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port (tests)")
    tokens: list[TokenConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tokens_off_localhost(self) -> HTTPConfig:
        if self.enabled and not self.is_loopback and not self.tokens:
            raise ValueError(f"host {self.host!r} is not a loopback address, so the API needs tokens "
                             f"(http.tokens with scope read or operator)")
        return self

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class ForecastConfig(Section):
    """Flow forecasts (forecast.py) in the decisions: next period's signal plans and tonight's lighting schedule."""

    enabled: bool = Field(False, description="learn a forecaster per counting line and direction from the stored "
                                             "interval records, online")
    tz: str = Field("UTC", description="local time zone of the roads (IANA name): hour of week, holidays")
    holidays: Literal["us", "none"] = Field("us", description="holiday calendar of the calendar features")
    warmup_weeks: int = Field(2, ge=1, le=52, description="a line's forecast is used once its hour-of-week "
                                                          "profile has seen every slot this many times")
    signals: bool = Field(True, description="plan signals for the validity window from the forecast")
    lighting_schedule: bool = Field(True, description="publish each segment's 24 h dimming schedule from the "
                                                      "forecast on {prefix}/lighting/{segment}/schedule, and "
                                                      "dim by it when the live data is missing")
    live_tolerance: float = Field(
        0.3, ge=0, description="live correction: a measured flow that differs from the forecast by more than this "
                               "fraction (and by more than live_tolerance_veh_h) replaces it")
    live_tolerance_veh_h: float = Field(60.0, ge=0)
    latitude: float = Field(44.98, ge=-90, le=90, description="of the lit roads: darkness from sun elevation")
    longitude: float = Field(-93.27, ge=-180, le=180)
    sun_elevation_deg: float = Field(-0.833, ge=-18, le=5, description="lamps on below this (-0.833 = sunset)")
    margin: float = Field(1.0, ge=0, description="the schedule plans for forecast + margin x recent error")

    @field_validator("tz")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError or ValueError for odd names
            raise ValueError(f"unknown time zone {v!r} (expected an IANA name such as Europe/Paris)") from None
        return v


class ControllerConfig(Section):
    mqtt: ControllerMQTT = Field(default_factory=ControllerMQTT)  # type: ignore[arg-type]
    store: StoreConfig = Field(default_factory=StoreConfig)  # type: ignore[arg-type]
    control: ControlConfig = Field(default_factory=ControlConfig)  # type: ignore[arg-type]
    health: HealthConfig = Field(default_factory=HealthConfig)  # type: ignore[arg-type]
    anomalies: AnomalyConfig = Field(default_factory=AnomalyConfig)  # type: ignore[arg-type]
    intersections: list[IntersectionConfig] = Field(default_factory=list)
    lighting: LightingConfig = Field(default_factory=LightingConfig)  # type: ignore[arg-type]
    services: ServicesConfig = Field(default_factory=ServicesConfig)  # type: ignore[arg-type]
    http: HTTPConfig = Field(default_factory=HTTPConfig)  # type: ignore[arg-type]
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _unique(self) -> ControllerConfig:
        _check_unique([i.id for i in self.intersections], "intersection id")
        return self

    @property
    def plan_validity_s(self) -> float:
        return self.control.plan_validity_s or 2 * self.control.period_s


# ---------------------------------------------------------------- loading


def parse_controller_config(text: str, path: Path | str = "<string>") -> ControllerConfig:
    """Parse and validate YAML text; raise :class:`ConfigError` naming every problem."""
    path = Path(path)
    root, data = read_yaml(text, path)
    cfg = validate_model(ControllerConfig, {} if data is None else data, root, path)
    return _resolve_paths(cfg, path.parent if path.name != "<string>" else Path.cwd())


def _resolve_paths(cfg: ControllerConfig, base: Path) -> ControllerConfig:
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    m = cfg.mqtt
    if m.tls is not None:
        m = m.model_copy(update={"tls": m.tls.model_copy(update={k: rel(getattr(m.tls, k)) for k in
                                                                 ("ca", "cert", "key") if getattr(m.tls, k)})})
    if m.password_file is not None:
        m = m.model_copy(update={"password_file": rel(m.password_file)})
    tokens = [t.model_copy(update={"token_file": rel(t.token_file)}) if t.token_file else t for t in cfg.http.tokens]
    return cfg.model_copy(update={
        "mqtt": m,
        "store": cfg.store.model_copy(update={"sqlite": rel(cfg.store.sqlite)}),
        "http": cfg.http.model_copy(update={"tokens": tokens}),
    })


def load_controller_config(path: Path | str) -> ControllerConfig:
    """Read and validate a controller YAML file."""
    return parse_controller_config(read_config_text(path), Path(path))
