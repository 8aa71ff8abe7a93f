#!/usr/bin/env python
"""Rolling-origin backtest of the controller's flow forecaster on real I-94 traffic counts.

Data: ``../shared/data/metro_interstate_traffic_volume.csv`` (UCI "Metro Interstate
Traffic Volume", MnDOT station 301, westbound I-94, hourly, Oct 2012 .. Sep 2018).

Split: everything before 2017-10-01 00:00 local time trains; targets from
2017-10-01 00:00 to 2018-10-01 00:00 (local) are evaluated, at horizons 1 h
and 24 h. Rolling origin: the forecast of hour T at horizon h uses only
counts up to hour T - h. Our forecaster keeps learning online through the
evaluation year (that is how it runs in the controller); the gradient-boosting
baseline is fitted once on the training period and then fed the true lags
of each origin, as are the other baselines.

Data handling (see ``edge_agent.controller.forecast.load_metro_csv``):

* duplicates: rows repeating an hour differ only in weather; the volume is
  identical on all of them (the loader checks), the first row is kept;
* local time -> UTC with America/Chicago (the autumn repeated 01:00 is taken
  as the daylight one, so the standard-time 01:00 is a gap);
* gaps: the grid is every UTC hour; hours without a row are NaN. Only hours
  whose true count exists are evaluated, and every method forecasts every
  one of them (the same set for all):
    - ours: a missing origin is an outage; the forecaster uses the last
      observed origin (horizon h + gap) or the seasonal profile and flags it;
    - persistence: last observed count at or before T - h;
    - seasonal-naive: count at T - 168 h, else T - 336 h, ... (up to 4
      weeks), else the hour-of-week average;
    - hour-of-week average: mean by local hour of week over training;
    - gradient boosting: NaN features (the model handles missing values).

Metrics: MAE and RMSE in vehicles/h, MAPE in % (no evaluated hour has a zero
count; the lowest is above 100 veh/h).

Run (about a minute on 2 cores)::

    python scripts/backtest_forecast.py [--json out.json] [--no-hgb]

Needs scikit-learn (``pip install -e .[bench]``) for the gradient-boosting
baseline only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.controller.forecast import (  # noqa: E402
    FlowForecaster,
    Forecast,
    HourlySeries,
    LightingRule,
    dark_fraction,
    hour_index,
    load_metro_csv,
    plan_lighting,
    us_holidays,
)

DEFAULT_CSV = ROOT.parent / "shared" / "data" / "metro_interstate_traffic_volume.csv"
TZ = ZoneInfo("America/Chicago")
HORIZONS = (1, 24)


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    err = p - y
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
            "mape": float(100 * np.mean(np.abs(err) / y))}


def calendar(series: HourlySeries,
             holidays: Mapping[date, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local hour of week, hour of day, month and holiday flag of every grid hour."""
    loc = series.local_times()
    how = np.array([t.weekday() * 24 + t.hour for t in loc])
    month = np.array([t.month for t in loc])
    hol = np.array([t.date() in holidays for t in loc], float)
    return how, how % 24, month, hol


def holiday_calendar(series: HourlySeries) -> dict[date, str]:
    """US federal holidays, observed days and bridge days, plus the CSV's own marks (State Fair)."""
    loc = series.local_times()
    cal = us_holidays(range(loc[0].year, loc[-1].year + 1))
    cal.update(series.holidays)
    return cal


def last_observed(y: np.ndarray) -> np.ndarray:
    """Value of the last observed hour at or before each position (NaN before the first)."""
    idx = np.where(np.isfinite(y), np.arange(len(y)), -1)
    idx = np.maximum.accumulate(idx)
    out = np.where(idx >= 0, y[np.maximum(idx, 0)], np.nan)
    return out


def run_ours(series: HourlySeries, holidays: Mapping[date, str], train_end: int, eval_end: int,
             **params: float) -> dict[str, object]:
    fc = FlowForecaster(tz=series.tz, holidays=holidays, **params)  # type: ignore[arg-type]
    first = int(series.hours[0])
    warm_from = train_end - max(HORIZONS)  # forecasts from these origins can hit evaluation targets
    t0 = time.perf_counter()
    fc.fit(series, until=first + warm_from)
    train_s = time.perf_counter() - t0
    n = len(series.hours)
    preds = {h: np.full(n, np.nan) for h in HORIZONS}
    degraded = {h: np.zeros(n, bool) for h in HORIZONS}
    full: list[Forecast | None] = [None] * n  # every origin's 24-h forecast, for the lighting replay
    upd_s, fc_s, n_upd = 0.0, 0.0, 0
    for j in range(warm_from, eval_end - 1):
        y = series.volume[j]
        t1 = time.perf_counter()
        fc.observe_hour(int(series.hours[j]), None if np.isnan(y) else float(y), series.weather_at(j))
        t2 = time.perf_counter()
        f = fc.forecast(horizon_h=max(HORIZONS))
        t3 = time.perf_counter()
        upd_s += t2 - t1
        fc_s += t3 - t2
        n_upd += 1
        full[j] = f
        for h in HORIZONS:
            if j + h < n:
                preds[h][j + h] = f.flow_veh_h[h - 1]
                degraded[h][j + h] = not f.model_used[h - 1] or f.hours_since_data > 0
    return {"preds": preds, "degraded": degraded, "train_s": train_s, "update_us": 1e6 * upd_s / n_upd,
            "forecast_us": 1e6 * fc_s / n_upd, "model_bytes": fc.nbytes, "forecaster": fc, "full": full}


def hgb_features(y: np.ndarray, how: np.ndarray, month: np.ndarray, hol: np.ndarray, h: int) -> np.ndarray:
    """Row t: features known at origin t for target T = t + h (lags NaN where missing or before the start)."""
    n = len(y)

    def lag(d: int) -> np.ndarray:  # y[t - d]
        out = np.full(n, np.nan)
        if d < n:
            out[d:] = y[: n - d]
        return out

    def at_target(a: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        out[: n - h] = a[h:]
        return out

    cols = [lag(0), lag(1), lag(2), lag(3), lag(24 - h), lag(48 - h), lag(168 - h), lag(336 - h),
            at_target(how % 24), at_target(how // 24), at_target(month), at_target(hol)]
    return np.stack(cols, axis=1)


def run_hgb(series: HourlySeries, how: np.ndarray, month: np.ndarray, hol: np.ndarray,
            train_end: int) -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    y = series.volume
    n = len(y)
    out: dict[str, object] = {"preds": {}, "train_s": 0.0}
    for h in HORIZONS:
        X = hgb_features(y, how, month, hol, h)
        target = np.full(n, np.nan)
        target[: n - h] = y[h:]
        rows = np.arange(n)
        train = (rows + h < train_end) & np.isfinite(target)
        model = HistGradientBoostingRegressor(
            max_iter=500, learning_rate=0.05, max_leaf_nodes=63, min_samples_leaf=20,
            categorical_features=[8, 9], early_stopping=True, validation_fraction=0.1,
            n_iter_no_change=30, random_state=0)
        t0 = time.perf_counter()
        model.fit(X[train], target[train])
        out["train_s"] = float(out["train_s"]) + time.perf_counter() - t0  # type: ignore[arg-type]
        p = np.full(n, np.nan)
        p[h:] = model.predict(X[: n - h])  # row t predicts t + h
        out["preds"][h] = p  # type: ignore[index]
        out[f"n_iter_{h}"] = int(model.n_iter_)
    return out


def lighting_replay(series: HourlySeries, ours: dict[str, object], holidays: Mapping[date, str],
                    train_end: int, eval_end: int, rule: LightingRule) -> dict[str, dict[str, float]]:
    """Replay lighting strategies over the dark hours of the evaluation year.

    Energy is lamp power x time: level (0..1) x dark fraction of the hour,
    relative to always-full lighting. "Too dim" counts dark hours whose level
    is below the one the rule gives for the hour's *actual* volume (hours with
    a true count only). Strategies:

    * night plan: at the hour sunset falls in, the forecast from the last
      complete hour sets every dark hour of the coming night (day-type
      profile where the forecaster had to fall back, see ``plan_lighting``);
    * plan + live: each dark hour uses the 1-h-ahead forecast made with the
      count of the hour just closed (same margin rule);
    * clock dimming: 60 % from 00:00 to 05:00 local, full otherwise (a common
      fixed part-night schedule, for reference);
    * oracle: the rule applied to the actual volume (the most the rule can save).
    """
    from edge_agent.controller.daytypes import DayTypeClassifier, cluster_days, daily_matrix

    y = series.volume
    full: list[Forecast | None] = ours["full"]  # type: ignore[assignment]
    hours_ts = series.hours.astype(np.float64) * 3600.0
    dark = dark_fraction(hours_ts, rule.latitude, rule.longitude, rule.sun_elevation_deg)
    loc = series.local_times()
    # day types from the training period: the night plan's fallback profile when the forecaster is degraded
    dm = daily_matrix(series)
    tr = np.array([d < loc[train_end].date() for d in dm.dates])
    lvl = dm.volumes.mean(1)
    tr &= lvl >= 0.5 * np.median(lvl)
    types = cluster_days(dm.volumes[tr])
    tr_dates = [d for d, m in zip(dm.dates, tr, strict=True) if m]
    clf = DayTypeClassifier(types.k).fit(dm.volumes[tr], types.labels, tr_dates, holidays)

    span = np.arange(train_end, eval_end)
    plan_level = np.full(len(y), np.nan)
    src_counts: dict[str, int] = {}
    # night plan: made at the first hour with darkness, from the forecast of the last complete hour
    for j in span:
        night_starts = dark[j] > 0 and (dark[j - 1] == 0 or j == span[0])
        if night_starts:
            f = full[j - 1]
            if f is None:
                continue
            d = loc[j].date()
            profile = clf.profile(clf.predict(np.zeros(0), d, holidays))
            plan = plan_lighting(f, rule, day_type_profile=profile, tz=series.tz)
            for h in range(len(plan.level)):
                jj = j + h
                if jj >= eval_end or dark[jj] == 0:
                    break
                plan_level[jj] = rule.level(plan.planned_veh_h[h])[()]
                src_counts[plan.source[h]] = src_counts.get(plan.source[h], 0) + 1
    live_level = np.full(len(y), np.nan)
    for j in span:
        f = full[j - 1]
        if dark[j] > 0 and f is not None:
            live_level[j] = plan_lighting(f, rule, tz=series.tz).level[0]
    hod = np.array([t.hour for t in loc])
    clock = np.where((hod >= 0) & (hod < 5), 0.6, 1.0)
    oracle = rule.level(np.nan_to_num(y, nan=np.inf))
    sel = np.zeros(len(y), bool)
    sel[span] = True
    sel &= dark > 0
    need = rule.level(np.nan_to_num(y, nan=0.0))
    has_y = np.isfinite(y)
    full_energy = float(dark[sel].sum())
    out: dict[str, dict[str, float]] = {}
    for name, level in (("always full", np.ones(len(y))), ("clock dimming 00-05 h at 60 %", clock),
                        ("night plan from forecast", np.where(np.isnan(plan_level), 1.0, plan_level)),
                        ("plan + live (1-h forecast)", np.where(np.isnan(live_level), 1.0, live_level)),
                        ("oracle (actual volume)", oracle)):
        e = float((level[sel] * dark[sel]).sum())
        m = sel & has_y
        too_dim = level[m] < need[m] - 1e-9
        two = level[m] < need[m] - (rule.levels[-1] - rule.levels[-2]) - 1e-9
        out[name] = {"energy_saved_pct": 100 * (1 - e / full_energy), "too_dim_hours": int(too_dim.sum()),
                     "too_dim_2_steps_hours": int(two.sum()), "dark_hours_with_counts": int(m.sum())}
    meta = {"dark_lamp_hours": full_energy, "night_plan_sources": src_counts, "day_types_k": types.k}
    out["_meta"] = meta  # type: ignore[assignment]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--json", type=Path, help="write all numbers here")
    ap.add_argument("--holidays", choices=["us+csv", "csv"], default="us+csv",
                    help="holiday calendar given to ours and to gradient boosting: US federal holidays with observed "
                         "days and bridge days plus the CSV's (State Fair), or only the CSV's holiday column")
    ap.add_argument("--margin", type=float, default=LightingRule().margin,
                    help="lighting: plan for forecast + MARGIN x the forecaster's recent MAE")
    ap.add_argument("--no-hgb", action="store_true", help="skip the gradient-boosting baseline (no scikit-learn)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    series = load_metro_csv(args.csv)
    load_s = time.perf_counter() - t0
    first = int(series.hours[0])
    train_end = hour_index(datetime(2017, 10, 1, tzinfo=TZ)) - first
    eval_end = hour_index(datetime(2018, 10, 1, tzinfo=TZ)) - first
    y = series.volume
    holidays = dict(series.holidays) if args.holidays == "csv" else holiday_calendar(series)
    how, _hod, month, hol = calendar(series, holidays)
    ev = np.zeros(len(y), bool)
    ev[train_end:eval_end] = True
    ev &= np.isfinite(y)
    yt = y[ev]

    preds: dict[str, dict[int, np.ndarray]] = {}
    # persistence
    lo = last_observed(y)
    preds["persistence"] = {h: np.r_[np.full(h, np.nan), lo[:-h]] for h in HORIZONS}
    # hour-of-week average over training
    tr = np.isfinite(y[:train_end])
    how_avg = np.array([y[:train_end][tr & (how[:train_end] == k)].mean() for k in range(168)])
    preds["hour-of-week average"] = {h: how_avg[how] for h in HORIZONS}
    # seasonal naive: same hour last week (or the week before, ... up to 4), else hour-of-week average
    sn = how_avg[how].copy()
    for w in (4, 3, 2, 1):
        lagged = np.r_[np.full(168 * w, np.nan), y[: -168 * w]]
        sn = np.where(np.isfinite(lagged), lagged, sn)
    preds["seasonal naive (t-168 h)"] = {h: sn for h in HORIZONS}
    timings: dict[str, object] = {"load_s": load_s}
    hgb_n_iter = {}
    if not args.no_hgb:
        res = run_hgb(series, how, month, hol, train_end)
        preds["gradient boosting (HGB)"] = res["preds"]  # type: ignore[assignment]
        timings["hgb_train_s"] = res["train_s"]
        hgb_n_iter = {h: res[f"n_iter_{h}"] for h in HORIZONS}
    ours = run_ours(series, holidays, train_end, eval_end)
    preds["ours (online profile + direct ridge)"] = ours["preds"]  # type: ignore[assignment]
    timings.update({k: ours[k] for k in ("train_s", "update_us", "forecast_us")})
    timings["model_bytes"] = ours["model_bytes"]
    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, ph in preds.items():
        results[name] = {}
        for h in HORIZONS:
            p = ph[h][ev]
            assert np.isfinite(p).all(), f"{name} h={h}: {np.isnan(p).sum()} hours without a forecast"
            results[name][f"{h}h"] = metrics(yt, p)
    deg = {h: float(ours["degraded"][h][ev].mean()) for h in HORIZONS}  # type: ignore[index]
    ok = {h: ~ours["degraded"][h][ev] for h in HORIZONS}  # type: ignore[index]
    ours_clean = {f"{h}h": metrics(yt[ok[h]], ours["preds"][h][ev][ok[h]]) for h in HORIZONS}  # type: ignore[index]

    print(f"I-94 WB hourly volume: {series.n_rows} rows, {series.n_duplicate_rows} duplicate rows dropped, "
          f"{int(np.isnan(y).sum())} missing hours on the grid")
    print(f"evaluated hours (true count present): {int(ev.sum())} of {eval_end - train_end}; "
          f"mean volume {yt.mean():.0f} veh/h")
    print()
    hdr = f"{'method':38s}" + "".join(f"{'MAE ' + str(h) + 'h':>9s}{'RMSE':>8s}{'MAPE%':>7s}" for h in HORIZONS)
    print(hdr)
    print("-" * len(hdr))
    for name, r in results.items():
        print(f"{name:38s}" + "".join(f"{r[f'{h}h']['mae']:9.0f}{r[f'{h}h']['rmse']:8.0f}{r[f'{h}h']['mape']:7.1f}"
                                      for h in HORIZONS))
    print()
    print(f"ours: {100 * deg[1]:.1f}% (1 h) / {100 * deg[24]:.1f}% (24 h) of evaluated hours forecast from a "
          f"stale origin or the profile (outages); on the rest MAE {ours_clean['1h']['mae']:.0f} / "
          f"{ours_clean['24h']['mae']:.0f}")
    print(f"ours: training pass {timings['train_s']:.1f} s over {train_end} hours; per hourly update "
          f"{timings['update_us']:.0f} us, per 24-h forecast {timings['forecast_us']:.0f} us; model state "
          f"{timings['model_bytes'] / 1e6:.2f} MB")
    if "hgb_train_s" in timings:
        print(f"gradient boosting: fit {timings['hgb_train_s']:.1f} s for both horizons (iterations {hgb_n_iter})")
    print(f"load {load_s:.1f} s; peak RSS {timings['peak_rss_mb']:.0f} MB")
    rule = LightingRule(margin=args.margin)
    light = lighting_replay(series, ours, holidays, train_end, eval_end, rule)
    meta = light.pop("_meta")
    print()
    print(f"lighting replay, evaluation year, lamps on while the sun is below {rule.sun_elevation_deg} deg at "
          f"{rule.latitude} N {rule.longitude} E; steps {rule.levels} at {rule.thresholds_veh_h} veh/h, "
          f"margin {rule.margin} x forecast MAE")
    print(f"  {meta['dark_lamp_hours']:.0f} lamp-hours of darkness; "
          f"hours of the night plans by source: {meta['night_plan_sources']}")
    print(f"  {'strategy':32s}{'energy saved':>14s}{'too dim (h)':>13s}{'by >1 step':>12s}")
    for name, r in light.items():
        print(f"  {name:32s}{r['energy_saved_pct']:13.1f}%{r['too_dim_hours']:13d}{r['too_dim_2_steps_hours']:12d}")
    print(f"  (too dim: dark hours whose level is below what the rule gives for the actual volume, of "
          f"{light['always full']['dark_hours_with_counts']} dark hours with counts)")
    if args.json:
        doc = {"lighting": light, "lighting_meta": meta, "lighting_rule": {
                   "thresholds_veh_h": rule.thresholds_veh_h, "levels": rule.levels, "margin": rule.margin,
                   "sun_elevation_deg": rule.sun_elevation_deg},
               "split": {"train_until": "2017-10-01T00:00 America/Chicago",
                         "eval": "2017-10-01T00:00 .. 2018-10-01T00:00 America/Chicago"},
               "evaluated_hours": int(ev.sum()), "mean_volume": float(yt.mean()),
               "results": results, "ours_non_degraded": ours_clean, "ours_degraded_share": deg,
               "timings": timings, "hgb_n_iter": hgb_n_iter}
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
