"""Day types: clusters of daily traffic shapes, and a classifier that names a day from its first hours.

* ``daily_matrix`` cuts an hourly series into local calendar days (24 local
  clock hours; the 23-hour spring-forward day gets its missing hour
  interpolated; days with more than ``max_missing`` missing hours are left
  out, fewer are filled by linear interpolation within the day).
* ``cluster_days`` runs k-means (``scipy.cluster.vq.kmeans2``, k-means++
  initialisation, best of several seeds) on the *shapes*: each day divided
  by its own mean, so a day type is a pattern, not a volume. ``k`` is chosen
  by the mean silhouette over k = 2..8 (numpy implementation, Euclidean).
* ``DayTypeClassifier`` labels a day after its first ``H`` hours: a Gaussian
  naive-Bayes score per cluster over the hours seen so far (per-cluster mean
  and standard deviation of the *volumes* in each hour: early in the day the
  daily mean is not known yet, so shapes cannot be normalised) plus a
  calendar prior P(cluster | weekday, holiday) with Laplace smoothing. With
  ``H = 0`` it is the calendar alone.

numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
from scipy.cluster.vq import kmeans2

from edge_agent.controller.forecast import HourlySeries

FArray = npt.NDArray[np.float64]


@dataclass
class DailyMatrix:
    """Days x 24 local hours of volumes (veh/h), with each day's date and calendar class."""

    dates: list[date]
    volumes: FArray  # (n_days, 24)
    filled: npt.NDArray[np.int64]  # hours interpolated per day


def daily_matrix(series: HourlySeries, max_missing: int = 2) -> DailyMatrix:
    """Cut the series into local days; see the module docstring for the missing-hour rule."""
    by_day: dict[date, FArray] = {}
    for k, y, t in zip(series.hours, series.volume, series.local_times(), strict=True):
        del k
        row = by_day.setdefault(t.date(), np.full(24, np.nan))
        if np.isnan(row[t.hour]):  # the repeated autumn hour: keep the first
            row[t.hour] = y
    dates, rows, filled = [], [], []
    for d in sorted(by_day):
        row = by_day[d]
        miss = np.isnan(row)
        if miss.sum() > max_missing or miss[0] or miss[-1]:
            continue
        if miss.any():
            idx = np.arange(24)
            row = row.copy()
            row[miss] = np.interp(idx[miss], idx[~miss], row[~miss])
        dates.append(d)
        rows.append(row)
        filled.append(int(miss.sum()))
    return DailyMatrix(dates, np.array(rows), np.array(filled, np.int64))


def shapes(volumes: FArray) -> FArray:
    """Each day divided by its own mean volume."""
    return volumes / np.maximum(volumes.mean(axis=1, keepdims=True), 1e-9)


def silhouette(X: FArray, labels: npt.NDArray[np.int64]) -> float:
    """Mean silhouette coefficient (Euclidean), O(n^2) memory: fine for a few thousand days."""
    sq = (X**2).sum(1)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0))
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    mean_to = np.stack([D[:, labels == c].mean(1) for c in ks], axis=1)  # (n, k)
    own = np.searchsorted(ks, labels)
    size = np.array([(labels == c).sum() for c in ks])
    n_own = size[own]
    a = np.where(n_own > 1, mean_to[np.arange(len(X)), own] * n_own / np.maximum(n_own - 1, 1), 0.0)
    mean_to[np.arange(len(X)), own] = np.inf
    b = mean_to.min(1)
    s = np.where(n_own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def kmeans(X: FArray, k: int, seeds: int = 8) -> tuple[FArray, npt.NDArray[np.int64]]:
    """Best (lowest inertia) of ``seeds`` k-means++ runs; clusters renumbered by decreasing size."""
    best: tuple[float, FArray, npt.NDArray[np.int64]] | None = None
    for seed in range(seeds):
        cent, lab = kmeans2(X, k, minit="++", seed=seed, iter=50)
        inertia = float(((X - cent[lab]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, cent, lab.astype(np.int64))
    assert best is not None
    _, cent, lab = best
    order = np.argsort(-np.bincount(lab, minlength=k))
    remap = np.empty(k, np.int64)
    remap[order] = np.arange(k)
    return cent[order], remap[lab]


@dataclass
class DayTypes:
    """Clusters of day shapes: centroids (k, 24) of shapes and the silhouette of each k tried."""

    k: int
    centroids: FArray
    labels: npt.NDArray[np.int64]
    silhouettes: dict[int, float]

    def assign(self, volumes: FArray) -> npt.NDArray[np.int64]:
        """Cluster of complete days (rows of 24 volumes): nearest centroid of the shape."""
        X = shapes(np.atleast_2d(volumes))
        return np.argmin(((X[:, None, :] - self.centroids[None]) ** 2).sum(-1), axis=1).astype(np.int64)


def cluster_days(volumes: FArray, ks: range = range(2, 9), seeds: int = 8) -> DayTypes:
    """k-means on day shapes, k = argmax of the mean silhouette over ``ks``."""
    X = shapes(volumes)
    sil, fits = {}, {}
    for k in ks:
        cent, lab = kmeans(X, k, seeds)
        sil[k] = silhouette(X, lab)
        fits[k] = (cent, lab)
    k = max(sil, key=lambda kk: sil[kk])
    return DayTypes(k, fits[k][0], fits[k][1], sil)


def calendar_key(d: date, holidays: Mapping[date, str]) -> int:
    """0..6 weekday (Monday = 0), 7 = holiday."""
    return 7 if d in holidays else d.weekday()


class DayTypeClassifier:
    """Labels a day from its first hours plus the calendar (see the module docstring)."""

    def __init__(self, n_types: int, prior_strength: float = 1.0) -> None:
        self.k = n_types
        self.alpha = prior_strength
        self.mu = np.zeros((n_types, 24))
        self.sd = np.ones((n_types, 24))
        self.prior = np.full((8, n_types), 1.0 / n_types)

    def fit(self, volumes: FArray, labels: npt.NDArray[np.int64], dates: list[date],
            holidays: Mapping[date, str]) -> DayTypeClassifier:
        for c in range(self.k):
            rows = volumes[labels == c]
            if len(rows):
                self.mu[c] = rows.mean(0)
                self.sd[c] = np.sqrt(rows.var(0) + (0.05 * rows.mean(0)) ** 2 + 50.0**2)
        counts = np.full((8, self.k), self.alpha)
        for d, c in zip(dates, labels, strict=True):
            counts[calendar_key(d, holidays), c] += 1
        self.prior = counts / counts.sum(1, keepdims=True)
        return self

    def scores(self, first_hours: FArray, d: date, holidays: Mapping[date, str]) -> FArray:
        """Log posterior (unnormalised) of each type after the hours given (length 0..24)."""
        h = len(first_hours)
        lp = np.log(self.prior[calendar_key(d, holidays)]).copy()
        if h:
            z = (np.asarray(first_hours)[None, :] - self.mu[:, :h]) / self.sd[:, :h]
            lp += -0.5 * (z**2).sum(1) - np.log(self.sd[:, :h]).sum(1)
        return lp

    def predict(self, first_hours: FArray, d: date, holidays: Mapping[date, str]) -> int:
        return int(np.argmax(self.scores(first_hours, d, holidays)))

    def profile(self, c: int) -> FArray:
        """Mean hourly volumes (veh/h) of a type: a fallback night plan when no forecast is available."""
        return self.mu[c].copy()


def accuracy_by_hour(clf: DayTypeClassifier, volumes: FArray, truth: npt.NDArray[np.int64], dates: list[date],
                     holidays: Mapping[date, str]) -> FArray:
    """Share of days labelled as their full-day cluster after 0..24 observed hours."""
    acc = np.zeros(25)
    for H in range(25):
        pred = np.array([clf.predict(volumes[i, :H], d, holidays) for i, d in enumerate(dates)])
        acc[H] = float((pred == truth).mean())
    return acc
