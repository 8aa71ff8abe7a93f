"""Short-term flow forecasts for one counting line or approach, learnt online.

Model (per forecaster, i.e. per line/approach and direction)::

    y(T) = s(T) + x(t, h) . beta[h, hour_of_day(T)]         T = t + h, h = 1..24

* ``s`` is a seasonal profile: one value per local hour of the week (168
  slots) and, for days in the holiday calendar, one 24-hour profile per
  holiday name (falling back to a pooled holiday profile, then to Sunday).
  Each slot is an exponentially weighted mean updated once per observation
  with a *robust* step (the innovation is clipped at ``clip`` times the
  slot's exponentially weighted absolute deviation) so a camera that counts
  zero for an afternoon does not drag the profile down.
* ``x(t, h)`` are features known at the origin ``t`` (the last complete
  hour): the residuals ``e = y - s`` of the last three hours, the residuals
  one day and one week before the target, the mean residual of the last day
  and of the last week (level), weather observed at the origin, and holiday
  flags of the target day. Missing hours enter as residual 0 ("as usual").
* ``beta`` is a *direct* model per horizon and target hour of day (24 x 24
  small ridge regressions, ``p`` = 13 features). Each is fitted by
  exponentially forgotten least squares: the normal equations ``A, b`` are
  updated by one rank-1 step when the target hour's count arrives (24 models
  per hour, vectorised), and solved (batched, 24 p x p systems) when a
  forecast is asked for. The ridge prior pulls coefficients to 0, so an
  untrained model forecasts the seasonal profile.

Training is the same online pass over history (``fit``/``observe_hour``): there
is no batch path that could differ from what runs live.

Gaps and outages: a forecast made ``g`` hours after the last observed hour uses
the direct model of horizon ``h + g`` from that older origin while ``h + g <=
24``; the other horizons (and all of them after a day without data) fall back
to the seasonal profile. The result says so: ``degraded`` and ``reason``.

Records: counts arrive as interval records of any length (the agents publish
clock-aligned intervals, e.g. 60 s .. 3600 s). They are summed into local-clock
hours internally; an hour observed for less than ``min_coverage`` of its
length is treated as missing, otherwise its flow is vehicles * 3600 / observed
seconds. Forecasts are hourly flows (veh/h) for the next 1..24 whole hours; the
"next interval" of a finer record length is inside the first of them.

This module imports numpy only (no OpenCV, no ONNX Runtime, no scikit-learn).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

FArray = npt.NDArray[np.float64]
IArray = npt.NDArray[np.int64]

HOUR_S = 3600
MAX_HORIZON = 24
# residual lags kept in the ring buffer: 168 + 24 covers "a week before the target" for every horizon
_BUF = 24 * 8 + 8
_WEATHER_WET = {"rain", "drizzle", "thunderstorm", "squall"}
_WEATHER_FOG = {"mist", "fog", "haze", "smoke"}

HolidayCalendar = Mapping[date, str] | Callable[[date], "str | None"]


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Weather:
    """Weather observed at the road (all optional). ``condition`` as OpenWeatherMap's ``main``."""

    temp_c: float | None = None
    rain_mm_h: float | None = None
    snow_mm_h: float | None = None
    condition: str | None = None

    def features(self) -> tuple[float, float, float]:
        """(snow, wet, fog) flags in [0, 1]."""
        cond = (self.condition or "").lower()
        snow = 1.0 if cond == "snow" or (self.snow_mm_h or 0.0) > 0 else 0.0
        wet = 1.0 if cond in _WEATHER_WET or (self.rain_mm_h or 0.0) > 0.5 else 0.0
        fog = 1.0 if cond in _WEATHER_FOG else 0.0
        return snow, wet, fog


@dataclass(frozen=True, slots=True)
class Forecast:
    """Hourly flow forecast from one origin.

    Attributes:
        origin: end of the last complete hour the forecaster had seen (UTC); the
            forecast hours start there.
        hour_starts: UTC start of each forecast hour (``len == len(flow_veh_h)``).
        flow_veh_h: forecast flow per hour, vehicles per hour.
        seasonal_veh_h: the seasonal profile for the same hours (the fallback).
        spread_veh_h: recent mean absolute error of the model used for each
            hour (a scale for margins: the lighting rule adds a multiple of it).
        model_used: per hour, True where the regression was used, False where
            the seasonal profile alone was.
        degraded: True when any hour fell back to the profile or the origin had
            no data; ``reason`` says why.
        hours_since_data: hours between the last observed hour and ``origin``.

    """

    origin: datetime
    hour_starts: tuple[datetime, ...]
    flow_veh_h: FArray
    seasonal_veh_h: FArray
    spread_veh_h: FArray
    model_used: npt.NDArray[np.bool_]
    degraded: bool
    reason: str | None
    hours_since_data: int

    def at(self, hour_start: datetime) -> float:
        """The forecast flow of the hour starting at ``hour_start`` (UTC-aware)."""
        return float(self.flow_veh_h[self.hour_starts.index(hour_start)])


# ----------------------------------------------------------------------------------------------- time


def _hour_index(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware (UTC), got naive {ts}")
    return math.floor(ts.timestamp() / HOUR_S)


def _from_hour_index(k: int) -> datetime:
    return datetime.fromtimestamp(k * HOUR_S, tz=timezone.utc)


class _Calendar:
    """Local calendar of UTC hour indices, cached: (hour of week, hour of day, date, holiday name)."""

    def __init__(self, tz: tzinfo, holidays: HolidayCalendar | None) -> None:
        self.tz = tz
        self._hol = holidays
        self._cache: dict[int, tuple[int, int, date, str | None, int]] = {}

    def holiday(self, d: date) -> str | None:
        if self._hol is None:
            return None
        if callable(self._hol):
            return self._hol(d)
        return self._hol.get(d)

    def __call__(self, k: int) -> tuple[int, int, date, str | None, int]:
        """(hour of week 0 = Monday 00h, hour of day, local date, holiday name, near-holiday flag)."""
        hit = self._cache.get(k)
        if hit is None:
            local = _from_hour_index(k).astimezone(self.tz)
            d = local.date()
            name = self.holiday(d)
            near = 0
            if name is None:
                near = int(self.holiday(d - timedelta(days=1)) is not None
                           or self.holiday(d + timedelta(days=1)) is not None)
            hit = (local.weekday() * 24 + local.hour, local.hour, d, name, near)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[k] = hit
        return hit


# ----------------------------------------------------------------------------------------------- profile


class SeasonalProfile:
    """Robust exponentially weighted hour-of-week profile with holiday profiles.

    ``alpha`` is the weight of a new observation of a slot (each slot sees one
    observation a week, so 0.1 remembers about ten weeks). ``clip`` bounds a
    step to ``clip`` times the slot's mean absolute deviation.
    """

    def __init__(self, alpha: float = 0.1, clip: float = 3.0, holiday_alpha: float = 0.3) -> None:
        self.alpha, self.clip, self.holiday_alpha = alpha, clip, holiday_alpha
        self.week = np.full(168, np.nan)
        self.week_dev = np.full(168, np.nan)
        self.week_n = np.zeros(168, np.int64)
        self.holidays: dict[str, FArray] = {}  # name -> (24,) ratio to the ordinary profile, "" = pooled

    def _base(self, how: int, hod: int) -> float:
        v = self.week[how]
        if math.isnan(v):
            # not seen yet: same hour any other day, else 0
            same = self.week[hod::24]
            return float(np.nanmean(same)) if np.isfinite(same).any() else 0.0
        return float(v)

    def _ratio(self, hod: int, holiday: str) -> float:
        for key in (holiday, ""):
            arr = self.holidays.get(key)
            if arr is not None and not math.isnan(arr[hod]):
                return float(arr[hod])
        return 1.0

    def value(self, how: int, hod: int, holiday: str | None) -> float:
        """Profile value of a local hour of week; on a holiday, times that holiday's learnt ratio for the hour."""
        base = self._base(how, hod)
        return base if holiday is None else base * self._ratio(hod, holiday)

    def update(self, how: int, hod: int, holiday: str | None, y: float) -> None:
        if holiday is not None:
            # a holiday teaches its ratio to the ordinary profile of the same hour of week (so a holiday on
            # a Saturday is a Saturday times the ratio), pooled over all holidays as the fallback
            base = self._base(how, hod)
            if base <= 0:
                return
            q = min(y / max(base, 50.0), 3.0)
            for key in (holiday, ""):
                arr = self.holidays.setdefault(key, np.full(24, np.nan))
                arr[hod] = q if math.isnan(arr[hod]) else arr[hod] + self.holiday_alpha * (q - arr[hod])
            return
        m, d = self.week[how], self.week_dev[how]
        self.week_n[how] += 1
        if math.isnan(m):
            self.week[how] = y
            self.week_dev[how] = 0.1 * abs(y) + 1.0
            return
        err = y - m
        lim = self.clip * d
        step = min(max(err, -lim), lim)
        self.week[how] = m + self.alpha * step
        self.week_dev[how] = d + self.alpha * (min(abs(err), 2 * lim) - d)

    @property
    def weeks_seen(self) -> int:
        return int(self.week_n.min())


# ----------------------------------------------------------------------------------------------- forecaster

FEATURE_NAMES = (
    "bias", "seasonal_T", "e_t", "e_t-1", "e_t-2", "e_T-24", "e_T-168", "mean_e_24h", "mean_e_168h",
    "snow_t", "wet_t", "fog_t", "holiday_or_near_T", "s_T*rel_24h", "s_T*rel_t",
)
N_FEAT = len(FEATURE_NAMES)
_SCALE = 1000.0  # features and targets in thousands of vehicles per hour: keeps A well conditioned


class FlowForecaster:
    """Online hourly flow forecaster of one counting line/approach (see the module docstring).

    Args:
        tz: local time zone of the road (calendar features); a name or tzinfo.
        holidays: date -> holiday name, or a callable returning the name or None.
        forget: forgetting factor of each regression per update (each of the
            576 models sees one sample a day, so 0.998 remembers about 500 days).
        ridge: ridge penalty (in (thousand veh/h)^2 units) pulling coefficients to 0.
        profile_alpha: EW weight of the seasonal profile.
        min_coverage: fraction of an hour that must be observed for it to count.
        warmup_weeks: weeks every hour-of-week slot must have been seen before
            forecasts are not flagged ``degraded`` for warm-up.

    """

    def __init__(
        self,
        tz: str | tzinfo = "America/Chicago",
        holidays: HolidayCalendar | None = None,
        *,
        forget: float = 0.998,
        ridge: float = 3.0,
        profile_alpha: float = 0.1,
        min_coverage: float = 0.5,
        warmup_weeks: int = 2,
        huber: float = 2.0,
        day_classes: int = 2,
    ) -> None:
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.cal = _Calendar(self.tz, holidays)
        self.profile = SeasonalProfile(alpha=profile_alpha)
        self.forget, self.ridge, self.huber = forget, ridge, huber
        self.min_coverage, self.warmup_weeks = min_coverage, warmup_weeks
        H, p = MAX_HORIZON, N_FEAT
        prior = np.eye(p) * ridge
        S = 24 * day_classes
        self.day_classes = day_classes
        self.A = np.broadcast_to(prior, (H, S, p, p)).copy()
        self.b = np.zeros((H, S, p))
        self.n = np.zeros((H, S), np.int64)
        self.mae = np.full(H, np.nan)  # EW mean absolute error of the model per horizon (veh/h)
        self.mae_seasonal = np.nan
        # ring buffers indexed by hour index mod _BUF
        self._y = np.full(_BUF, np.nan)
        self._e = np.full(_BUF, np.nan)
        self._s = np.full(_BUF, np.nan)  # seasonal value used for each hour (thousand veh/h)
        self._X = np.zeros((_BUF, H, p))  # features stored at each origin for its 24 targets
        self._P = np.full((_BUF, H), np.nan)  # model forecast made at each origin (veh/h), for the error tracker
        self._has_x = np.zeros(_BUF, bool)
        self._last_k: int | None = None  # last hour index committed (observed or not)
        self._last_obs: int | None = None  # last hour index with an observation
        # partial hour being accumulated from finer records
        self._acc_k: int | None = None
        self._acc_veh = 0.0
        self._acc_obs = 0.0
        self._acc_weather: Weather | None = None
        self._weather: Weather | None = None

    # ------------------------------------------------------------------------------------------- input

    def observe(self, start: datetime, end: datetime, vehicles: float, observed_s: float | None = None,
                weather: Weather | None = None) -> None:
        """Feed one interval record: ``vehicles`` counted in [start, end), of which ``observed_s`` observed.

        Intervals must not straddle an hour boundary (the agents' clock-aligned
        intervals of 60, 300, 900 or 3600 s never do). Records must arrive in time
        order; a record older than the hour being accumulated is ignored.
        """
        length = (end - start).total_seconds()
        if length <= 0 or length > HOUR_S:
            raise ValueError(f"interval length must be in (0, 3600] s, got {length}")
        k = _hour_index(start)
        if _hour_index(end - timedelta(microseconds=1)) != k:
            raise ValueError(f"interval [{start}, {end}) straddles an hour boundary")
        obs = length if observed_s is None else float(observed_s)
        if self._acc_k is not None and k < self._acc_k:
            return
        if self._acc_k is not None and k > self._acc_k:
            self._flush()
        if self._acc_k is None:
            if self._last_k is not None and k <= self._last_k:
                return
            self._acc_k, self._acc_veh, self._acc_obs = k, 0.0, 0.0
        self._acc_veh += vehicles
        self._acc_obs += obs
        if weather is not None:
            self._acc_weather = weather
        if _hour_index(end) > k and self._acc_obs >= HOUR_S - 1e-6:
            self._flush()

    def observe_stats(self, doc: Mapping[str, Any], line_id: str, directions: Sequence[str] = ("in", "out"),
                      weather: Weather | None = None) -> None:
        """Feed one ``edge-agent/interval-stats`` v1 message (the dict of its JSON payload)."""
        iv = doc["interval"]
        start = datetime.fromisoformat(iv["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(iv["end"].replace("Z", "+00:00"))
        for line in doc["lines"]:
            if line["line_id"] == line_id:
                vehicles = sum(int(line[d]["vehicles"]) for d in directions)
                self.observe(start, end, vehicles, float(iv["observed_s"]), weather)
                return
        raise KeyError(f"line {line_id!r} not in message of camera {doc.get('camera_id')!r}")

    def flush(self, now: datetime) -> None:
        """Close the hour being accumulated if ``now`` is past its end (call before forecasting)."""
        k = _hour_index(now)
        if self._acc_k is not None and k > self._acc_k:
            self._flush()

    def _flush(self) -> None:
        k, veh, obs = self._acc_k, self._acc_veh, self._acc_obs
        self._acc_k = None
        assert k is not None
        y = veh * HOUR_S / obs if obs >= self.min_coverage * HOUR_S else None
        self.observe_hour(k, y, self._acc_weather)
        self._acc_weather = None

    # ------------------------------------------------------------------------------------------- core

    def observe_hour(self, k: int | datetime, flow_veh_h: float | None, weather: Weather | None = None) -> None:
        """Commit one hour (UTC hour index or aware start time); ``None``/NaN = no data for that hour.

        Hours skipped between calls are committed as missing. Cost: one
        vectorised rank-1 update of 24 small models and a feature build.
        """
        if isinstance(k, datetime):
            k = _hour_index(k)
        if self._last_k is not None:
            if k <= self._last_k:
                return
            # a long outage: only the last _BUF hours matter
            for j in range(max(self._last_k + 1, k - _BUF), k):
                self._commit(j, None, None)
        self._commit(k, flow_veh_h, weather)

    def _commit(self, k: int, y: float | None, weather: Weather | None) -> None:
        i = k % _BUF
        how, hod, _d, hol, _near = self.cal(k)
        s = self.profile.value(how, hod, hol)
        has = y is not None and not math.isnan(y)
        self._s[i] = s / _SCALE
        if has:
            assert y is not None
            # 1. learn: the 24 models whose target is this hour, from the features stored at their origins
            origins = (k - np.arange(1, MAX_HORIZON + 1)) % _BUF
            ok = self._has_x[origins] & ((k - np.arange(1, MAX_HORIZON + 1)) > k - _BUF)
            if self._last_k is not None and ok.any():
                hs = np.nonzero(ok)[0]
                X = self._X[origins[hs], hs]  # (m, p)
                # target: residual against the seasonal value that was used at the origin
                r = y / _SCALE - X[:, 1]
                pred = self._P[origins[hs], hs]
                err = np.abs(pred - y)
                cur = self.mae[hs]
                # Huber-type weight: a sample the model misses by more than huber * its MAE counts less
                w = np.where(np.isnan(cur) | (err <= self.huber * cur), 1.0,
                             self.huber * cur / np.maximum(err, 1e-9)) if self.huber > 0 else np.ones(len(hs))
                Xw = X * w[:, None]
                m = self._slot(k)
                A, b = self.A[hs, m], self.b[hs, m]
                self.A[hs, m] = self.forget * A + (1 - self.forget) * self.ridge * np.eye(N_FEAT) \
                    + Xw[:, :, None] * X[:, None, :]
                self.b[hs, m] = self.forget * b + Xw * r[:, None]
                self.n[hs, m] += 1
                self.mae[hs] = np.where(np.isnan(cur), err, cur + 0.01 * (err - cur))
            # 2. seasonal profile
            es = abs(y - s)
            m = self.mae_seasonal
            self.mae_seasonal = es if math.isnan(m) else m + 0.01 * (es - m)
            self.profile.update(how, hod, hol, y)
            self._y[i], self._e[i] = y, (y - s) / _SCALE
            self._last_obs = k
            self._weather = weather
        else:
            self._y[i], self._e[i] = np.nan, np.nan
        self._last_k = k
        # 3. features at this origin (only origins with data train/serve the models)
        self._has_x[i] = has
        if has:
            self._X[i] = self._features(k, weather)
            beta = self._solve(k)
            self._P[i] = _SCALE * (self._X[i, :, 1] + np.einsum("hp,hp->h", self._X[i], beta))

    def _features(self, t: int, weather: Weather | None) -> FArray:
        H = MAX_HORIZON
        e = self._e
        X = np.zeros((H, N_FEAT))
        X[:, 0] = 1.0
        recent = np.nan_to_num(e[(t - np.arange(3)) % _BUF])
        X[:, 2:5] = recent
        T = t + np.arange(1, H + 1)
        X[:, 5] = np.nan_to_num(e[(T - 24) % _BUF])
        X[:, 6] = np.nan_to_num(e[(T - 168) % _BUF])
        day = e[(t - np.arange(24)) % _BUF]
        week = e[(t - np.arange(168)) % _BUF]
        X[:, 7] = np.nanmean(day) if np.isfinite(day).any() else 0.0
        X[:, 8] = np.nanmean(week) if np.isfinite(week).any() else 0.0
        sd = self._s[(t - np.arange(24)) % _BUF]
        ok = np.isfinite(day)
        rel24 = float(day[ok].sum() / max(sd[ok].sum(), 0.2 * ok.sum())) if ok.any() else 0.0
        rel_t = float(e[t % _BUF] / max(self._s[t % _BUF], 0.2)) if np.isfinite(e[t % _BUF]) else 0.0
        if weather is not None:
            X[:, 9:12] = weather.features()
        for j, k in enumerate(T):
            how, hod, _d, hol, near = self.cal(int(k))
            X[j, 1] = self.profile.value(how, hod, hol) / _SCALE
            X[j, 12] = 1.0 if (hol is not None or near) else 0.0
        X[:, 13] = X[:, 1] * rel24
        X[:, 14] = X[:, 1] * rel_t
        return X

    def _slot(self, k: int) -> int:
        """Model slot of a target hour: hour of day, split by day class (weekday / Saturday / Sunday+holiday)."""
        how, hod, _d, hol, _near = self.cal(k)
        if self.day_classes == 1:
            return hod
        dow = how // 24
        if self.day_classes == 2:
            c = 1 if (dow >= 5 or hol is not None) else 0
        else:
            c = 2 if (dow == 6 or hol is not None) else (1 if dow == 5 else 0)
        return c * 24 + hod

    def _solve(self, t: int) -> FArray:
        """Coefficients of the 24 models serving origin t: (24, p)."""
        hods = np.array([self._slot(t + h) for h in range(1, MAX_HORIZON + 1)])
        A = self.A[np.arange(MAX_HORIZON), hods]
        b = self.b[np.arange(MAX_HORIZON), hods]
        return np.linalg.solve(A, b[:, :, None])[:, :, 0]

    # ------------------------------------------------------------------------------------------- output

    def forecast(self, now: datetime | None = None, horizon_h: int = MAX_HORIZON) -> Forecast:
        """Forecast the ``horizon_h`` whole hours after the last complete hour before ``now``.

        ``now`` defaults to the end of the last committed hour (replay). Hours
        between the last observation and ``now`` count as an outage.
        """
        if not 1 <= horizon_h <= MAX_HORIZON:
            raise ValueError(f"horizon_h must be in 1..{MAX_HORIZON}")
        if self._last_k is None and self._acc_k is None:
            raise RuntimeError("no data yet: feed records (or fit on history) before forecasting")
        if now is not None:
            self.flush(now)
            t = _hour_index(now) - 1
        else:
            assert self._last_k is not None
            t = self._last_k
        T = t + np.arange(1, horizon_h + 1)
        seasonal = np.array([self.profile.value(*self.cal(int(k))[:2], self.cal(int(k))[3]) for k in T])
        g = t - self._last_obs if self._last_obs is not None else 10**9
        flow = seasonal.copy()
        used = np.zeros(horizon_h, bool)
        spread = np.full(horizon_h, self.mae_seasonal)
        if g < MAX_HORIZON:
            o = t - g  # origin with data
            i = o % _BUF
            beta = self._solve(o)
            hs = np.arange(horizon_h) + g  # model index (horizon - 1) from the older origin
            use = hs < MAX_HORIZON
            X = self._X[i, hs[use]]
            # the profile may have moved on since the origin: use today's seasonal value
            X = X.copy()
            X[:, 1] = seasonal[use] / _SCALE
            flow[use] = _SCALE * (X[:, 1] + np.einsum("hp,hp->h", X, beta[hs[use]]))
            used[use] = True
            spread[use] = np.where(np.isnan(self.mae[hs[use]]), self.mae_seasonal, self.mae[hs[use]])
        np.maximum(flow, 0.0, out=flow)
        reasons = []
        if g >= MAX_HORIZON:
            reasons.append(f"no counts for {g} h: seasonal hour-of-week profile only" if g < 10**9
                           else "no counts yet: seasonal profile only")
        elif g > 0:
            n_fb = int((~used).sum())
            reasons.append(f"last count {g} h old: forecasting from that hour"
                           + (f"; last {n_fb} h seasonal profile only" if n_fb else ""))
        if self.profile.weeks_seen < self.warmup_weeks:
            reasons.append(f"warming up: profile has seen some hours of the week {self.profile.weeks_seen} times")
        return Forecast(
            origin=_from_hour_index(t + 1),
            hour_starts=tuple(_from_hour_index(int(k)) for k in T),
            flow_veh_h=flow,
            seasonal_veh_h=seasonal,
            spread_veh_h=spread,
            model_used=used,
            degraded=bool(reasons),
            reason="; ".join(reasons) or None,
            hours_since_data=int(min(g, 10**6)),
        )

    # ------------------------------------------------------------------------------------------- misc

    def fit(self, series: HourlySeries, until: int | None = None) -> FlowForecaster:
        """Replay an hourly series (up to hour index ``until``, exclusive) through ``observe_hour``."""
        for j in range(len(series.hours)):
            k = int(series.hours[j])
            if until is not None and k >= until:
                break
            y = series.volume[j]
            self.observe_hour(k, None if math.isnan(y) else float(y), series.weather_at(j))
        return self

    @property
    def nbytes(self) -> int:
        """Bytes held in the model's arrays (profile, 576 regressions, ring buffers)."""
        arrays = [self.A, self.b, self.n, self.mae, self._y, self._e, self._s, self._X, self._P, self._has_x,
                  self.profile.week, self.profile.week_dev, self.profile.week_n,
                  *self.profile.holidays.values()]
        return int(sum(a.nbytes for a in arrays))


class ForecastHub:
    """One :class:`FlowForecaster` per (camera, line, direction), fed by agents' statistics messages.

    Implements the decision round's ``Forecaster`` protocol (``controller/decide.py``):
    ``flow_veh_h(camera_id, line_id, direction, start_ts, end_ts)``.
    """

    def __init__(self, tz: str | tzinfo = "America/Chicago", holidays: HolidayCalendar | None = None,
                 **params: Any) -> None:
        self.tz, self.holidays, self.params = tz, holidays, params
        self.forecasters: dict[tuple[str, str, str], FlowForecaster] = {}

    def forecaster(self, camera_id: str, line_id: str, direction: str) -> FlowForecaster:
        key = (camera_id, line_id, direction)
        fc = self.forecasters.get(key)
        if fc is None:
            fc = self.forecasters[key] = FlowForecaster(self.tz, self.holidays, **self.params)
        return fc

    def observe_stats(self, doc: Mapping[str, Any], weather: Weather | None = None) -> None:
        """Feed one ``edge-agent/interval-stats`` v1 message: every line, each direction."""
        for line in doc["lines"]:
            for d in ("in", "out"):
                self.forecaster(doc["camera_id"], line["line_id"], d).observe_stats(doc, line["line_id"], (d,), weather)

    def flow_veh_h(self, camera_id: str, line_id: str, direction: str, start_ts: float,
                   end_ts: float) -> float | None:
        """Expected mean flow over [start_ts, end_ts) (Unix s, within 24 h), or None without counts yet."""
        fc = self.forecasters.get((camera_id, line_id, direction))
        if fc is None or fc._last_obs is None and fc._acc_k is None:
            return None
        f = fc.forecast(now=datetime.fromtimestamp(start_ts, tz=timezone.utc))
        starts = np.array([h.timestamp() for h in f.hour_starts])
        overlap = np.clip(np.minimum(starts + HOUR_S, end_ts) - np.maximum(starts, start_ts), 0.0, None)
        if overlap.sum() <= 0:
            return None
        return float((f.flow_veh_h * overlap).sum() / overlap.sum())


# ----------------------------------------------------------------------------------------------- holidays


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """n-th (1-based; -1 = last) ``weekday`` (0 = Monday) of a month."""
    if n > 0:
        d = date(year, month, 1)
        d += timedelta(days=(weekday - d.weekday()) % 7)
        return d + timedelta(weeks=n - 1)
    d = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def us_holidays(years: Iterable[int], bridge_days: bool = True) -> dict[date, str]:
    """US federal holidays (5 U.S.C. 6103) with their observed weekday, plus optional bridge days.

    Fixed-date holidays falling on a Saturday are observed the Friday before,
    on a Sunday the Monday after; both dates are returned (traffic follows
    both). ``bridge_days`` adds days that behave like holidays on urban roads:
    the Friday after Thanksgiving, Christmas Eve, 26-30 December (school
    holidays) and New Year's Eve.
    """
    out: dict[date, str] = {}
    for y in years:
        fixed = {date(y, 1, 1): "New Years Day", date(y, 7, 4): "Independence Day",
                 date(y, 11, 11): "Veterans Day", date(y, 12, 25): "Christmas Day"}
        for d, name in fixed.items():
            out[d] = name
            if d.weekday() == 5:
                out[d - timedelta(days=1)] = name
            elif d.weekday() == 6:
                out[d + timedelta(days=1)] = name
        out[_nth_weekday(y, 1, 0, 3)] = "Martin Luther King Jr Day"
        out[_nth_weekday(y, 2, 0, 3)] = "Washingtons Birthday"
        out[_nth_weekday(y, 5, 0, -1)] = "Memorial Day"
        out[_nth_weekday(y, 9, 0, 1)] = "Labor Day"
        out[_nth_weekday(y, 10, 0, 2)] = "Columbus Day"
        thanks = _nth_weekday(y, 11, 3, 4)
        out[thanks] = "Thanksgiving Day"
        if bridge_days:
            out.setdefault(thanks + timedelta(days=1), "Day after Thanksgiving")
            out.setdefault(date(y, 12, 24), "Christmas Eve")
            out.setdefault(date(y, 12, 31), "New Years Eve")
            for day in range(26, 31):
                out.setdefault(date(y, 12, day), "Christmas week")
    return out


# ----------------------------------------------------------------------------------------------- data


@dataclass
class HourlySeries:
    """A complete hourly grid (UTC hour indices) with NaN where no count exists.

    ``holidays`` maps local dates to holiday names; weather arrays are NaN /
    empty string where unknown.
    """

    hours: IArray
    volume: FArray
    temp_c: FArray
    rain_mm: FArray
    snow_mm: FArray
    condition: npt.NDArray[np.str_]
    holidays: dict[date, str] = field(default_factory=dict)
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("America/Chicago"))
    n_rows: int = 0
    n_duplicate_rows: int = 0
    n_nonexistent_local: int = 0

    def weather_at(self, j: int) -> Weather | None:
        cond = str(self.condition[j])
        if not cond:
            return None
        t, r, s = self.temp_c[j], self.rain_mm[j], self.snow_mm[j]
        return Weather(None if math.isnan(t) else float(t), None if math.isnan(r) else float(r),
                       None if math.isnan(s) else float(s), cond)

    def index_of(self, ts: datetime) -> int:
        return int(_hour_index(ts) - self.hours[0])

    def local_times(self) -> list[datetime]:
        return [_from_hour_index(int(k)).astimezone(self.tz) for k in self.hours]


def load_metro_csv(path: str | Path, tz: str = "America/Chicago") -> HourlySeries:
    """Load the UCI "Metro Interstate Traffic Volume" CSV (``dd/mm/yyyy H:MM`` local time).

    Rules, stated because the file needs them:

    * **Duplicates:** 5,445 hours appear on several rows that differ only in
      the weather description (the volume is identical on every one of them,
      checked here); the first row of each hour is kept.
    * **Local time:** timestamps are local wall-clock time (the spring-forward
      02:00 hour never appears). They are converted to UTC with ``tz``; the
      repeated 01:00 of the autumn change is taken as its first (daylight)
      occurrence, so the second one is a gap. A wall time that does not exist
      locally would be dropped and counted in ``n_nonexistent_local``.
    * **Gaps:** every UTC hour from the first to the last row is on the grid;
      hours without a row are NaN (about 12,000).
    * **Bad weather values:** temperature 0 K and rain over 100 mm/h are NaN.
    * **Holidays:** the file marks a holiday only on the 00:00 row of its day;
      the holiday calendar is those dates.
    """
    zone = ZoneInfo(tz)
    seen: dict[int, tuple[float, float, float, float, str]] = {}
    holidays: dict[date, str] = {}
    n_rows = n_dup = n_bad = 0
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            n_rows += 1
            local = datetime.strptime(row["date_time"], "%d/%m/%Y %H:%M")
            aware = local.replace(tzinfo=zone, fold=0)
            back = aware.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
            if back != local:
                n_bad += 1
                continue
            if row["holiday"] not in ("None", ""):
                holidays[local.date()] = row["holiday"]
            k = _hour_index(aware)
            vol = float(row["traffic_volume"])
            if k in seen:
                n_dup += 1
                if seen[k][0] != vol:
                    raise ValueError(f"duplicate hour {local} with different volumes {seen[k][0]} / {vol}")
                continue
            temp = float(row["temp"])
            rain = float(row["rain_1h"])
            seen[k] = (vol, temp - 273.15 if temp > 150 else math.nan, rain if rain <= 100 else math.nan,
                       float(row["snow_1h"]), row["weather_main"])
    ks = np.array(sorted(seen), np.int64)
    hours = np.arange(ks[0], ks[-1] + 1, dtype=np.int64)
    n = len(hours)
    vol, temp, rain, snow = (np.full(n, np.nan) for _ in range(4))
    cond = np.full(n, "", dtype="<U16")
    pos = ks - ks[0]
    vals = [seen[int(k)] for k in ks]
    vol[pos] = [v[0] for v in vals]
    temp[pos] = [v[1] for v in vals]
    rain[pos] = [v[2] for v in vals]
    snow[pos] = [v[3] for v in vals]
    cond[pos] = [v[4] for v in vals]
    return HourlySeries(hours, vol, temp, rain, snow, cond, holidays, zone, n_rows, n_dup, n_bad)


def hour_index(ts: datetime) -> int:
    """UTC hour index (hours since the Unix epoch) of an aware timestamp."""
    return _hour_index(ts)


# ----------------------------------------------------------------------------------------------- sun and lighting
# Solar position: NOAA Global Monitoring Laboratory, "General Solar Position Calculations"
# (https://gml.noaa.gov/grad/solcalc/solareqns.PDF): fractional year, equation of time and declination as
# Fourier series (Spencer 1971), hour angle from true solar time; sunrise/sunset at zenith 90.833 deg
# (refraction and the sun's radius). Accuracy about a minute at mid latitudes, enough to switch lamps.

MINNEAPOLIS_I94 = (44.98, -93.27)  # MnDOT station 301 area, degrees N and E


def _solar_terms(ts: FArray) -> tuple[FArray, FArray, FArray]:
    """(declination rad, equation of time min, UTC minutes of day) for Unix timestamps."""
    ts = np.asarray(ts, np.float64)
    days = np.floor(ts / 86400.0)
    minutes = (ts - days * 86400.0) / 60.0
    # day of year (1-based) and year length, from the civil date of each timestamp
    d64 = days.astype("int64").astype("datetime64[D]")
    year_start = d64.astype("datetime64[Y]").astype("datetime64[D]")
    doy = (d64 - year_start).astype(np.int64) + 1
    next_year = (d64.astype("datetime64[Y]") + 1).astype("datetime64[D]")
    ylen = (next_year - year_start).astype(np.int64)
    g = 2 * np.pi / ylen * (doy - 1 + (minutes / 60.0 - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g)
                       - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g))
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    return decl, eqtime, minutes


def solar_elevation_deg(ts: npt.ArrayLike, lat: float = MINNEAPOLIS_I94[0],
                        lon: float = MINNEAPOLIS_I94[1]) -> FArray:
    """Sun elevation above the horizon (degrees, no refraction) at Unix timestamps (UTC seconds)."""
    decl, eqtime, minutes = _solar_terms(np.asarray(ts, np.float64))
    tst = minutes + eqtime + 4.0 * lon  # true solar time, minutes
    ha = np.radians(tst / 4.0 - 180.0)
    phi = math.radians(lat)
    cz = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(ha)
    return 90.0 - np.degrees(np.arccos(np.clip(cz, -1.0, 1.0)))


def sunrise_sunset(d: date, lat: float = MINNEAPOLIS_I94[0], lon: float = MINNEAPOLIS_I94[1],
                   zenith_deg: float = 90.833) -> tuple[datetime, datetime]:
    """UTC sunrise and sunset of a date (NOAA: ha = arccos(cos z / (cos lat cos decl) - tan lat tan decl)).

    Evaluated with the declination and equation of time at local solar noon,
    then refined once at each event. Polar day/night raise ``ValueError``.
    """
    noon = datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc).timestamp() - 240.0 * lon
    phi = math.radians(lat)

    def event(ts0: float, sign: float) -> float:
        decl, eqtime, _ = _solar_terms(np.array([ts0]))
        c = math.cos(math.radians(zenith_deg)) / (math.cos(phi) * math.cos(decl[0])) - math.tan(phi) * math.tan(decl[0])
        if abs(c) > 1:
            raise ValueError(f"no sunrise/sunset at latitude {lat} on {d}")
        ha = math.degrees(math.acos(c))
        minutes = 720.0 - 4.0 * (lon + sign * ha) - float(eqtime[0])
        return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp() + 60.0 * minutes

    rise = event(event(noon, 1.0), 1.0)
    sett = event(event(noon, -1.0), -1.0)
    return (datetime.fromtimestamp(rise, tz=timezone.utc), datetime.fromtimestamp(sett, tz=timezone.utc))


def dark_fraction(hour_starts: npt.ArrayLike, lat: float = MINNEAPOLIS_I94[0], lon: float = MINNEAPOLIS_I94[1],
                  elevation_deg: float = -0.833, steps: int = 12) -> FArray:
    """Fraction of each hour (Unix start times) with the sun below ``elevation_deg`` (5-minute midpoints)."""
    t = np.asarray(hour_starts, np.float64)[:, None] + (np.arange(steps) + 0.5) * (HOUR_S / steps)
    return (solar_elevation_deg(t.ravel(), lat, lon).reshape(t.shape) < elevation_deg).mean(axis=1)


@dataclass(frozen=True, slots=True)
class LightingRule:
    """Dimming steps by hourly volume during darkness.

    ``levels[i]`` applies to volumes in [thresholds[i-1], thresholds[i]) (the
    first below ``thresholds[0]``, the last at or above the last threshold).
    The planned volume is the forecast plus ``margin`` times its spread (the
    forecaster's recent mean absolute error), so the rule errs on the bright
    side. Lamps are on (at the chosen level) while the sun is below
    ``sun_elevation_deg`` (-0.833 = sunset/sunrise; -6 = civil dusk/dawn).
    The default steps are illustrative, for a road peaking near 7,000 veh/h:
    set them from the road's lighting class.
    """

    thresholds_veh_h: tuple[float, ...] = (800.0, 1800.0, 3500.0)
    levels: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)
    margin: float = 1.0
    sun_elevation_deg: float = -0.833
    latitude: float = MINNEAPOLIS_I94[0]
    longitude: float = MINNEAPOLIS_I94[1]

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.thresholds_veh_h) + 1:
            raise ValueError("levels must have one more entry than thresholds_veh_h")
        if list(self.thresholds_veh_h) != sorted(self.thresholds_veh_h):
            raise ValueError("thresholds_veh_h must be ascending")

    def level(self, volume_veh_h: npt.ArrayLike) -> FArray:
        """Level (0..1 of full power) each volume calls for."""
        idx = np.searchsorted(np.asarray(self.thresholds_veh_h), np.asarray(volume_veh_h, np.float64), side="right")
        return np.asarray(self.levels, np.float64)[idx]


@dataclass(frozen=True, slots=True)
class LightingPlan:
    """Per forecast hour: fraction of the hour dark, planned volume, level (0..1) and lamp energy (level x dark)."""

    hour_starts: tuple[datetime, ...]
    dark: FArray
    planned_veh_h: FArray
    level: FArray
    source: tuple[str, ...]  # "forecast", "day type" or "seasonal" per hour

    @property
    def energy(self) -> FArray:
        return self.level * self.dark


def plan_lighting(forecast: Forecast, rule: LightingRule = LightingRule(),
                  day_type_profile: npt.ArrayLike | None = None, tz: str | tzinfo = "America/Chicago",
                  live_veh_h: float | None = None) -> LightingPlan:
    """Lamp levels for the hours of ``forecast`` (the controller's lighting model calls this).

    * Hours the regression served: forecast + ``rule.margin`` x spread.
    * Hours the forecaster could only fill from its seasonal profile (outage,
      warm-up): the larger of the profile and ``day_type_profile`` (24 veh/h
      values by local hour of the day type expected, e.g.
      ``DayTypeClassifier.profile``), plus the margin.
    * ``live_veh_h``: a live correction for the first hour (e.g. the flow of
      the interval just closed): the plan never goes below what is measured now.
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    starts = np.array([h.timestamp() for h in forecast.hour_starts])
    dark = dark_fraction(starts, rule.latitude, rule.longitude, rule.sun_elevation_deg)
    planned = forecast.flow_veh_h.copy()
    source = ["forecast" if u else "seasonal" for u in forecast.model_used]
    if day_type_profile is not None:
        prof = np.asarray(day_type_profile, np.float64)
        for j, h in enumerate(forecast.hour_starts):
            if not forecast.model_used[j]:
                v = prof[h.astimezone(zone).hour]
                if v > planned[j]:
                    planned[j], source[j] = v, "day type"
    planned = planned + rule.margin * np.nan_to_num(forecast.spread_veh_h)
    if live_veh_h is not None and len(planned):
        planned[0] = max(planned[0], live_veh_h)
    level = np.where(dark > 0, rule.level(planned), 0.0)
    return LightingPlan(forecast.hour_starts, dark, planned, level, tuple(source))
