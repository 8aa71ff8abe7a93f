#!/usr/bin/env python
"""Day types of real I-94 traffic: k-means on daily shapes, early labelling, cluster plot.

Days before 2017-10-01 (local) fit the clusters and the classifier; days from
2017-10-01 to 2018-09-30 are held out. A day is used when at most 2 of its 24
local hours are missing (interpolated). k is the one with the highest mean
silhouette over k = 2..8 on the training days. Alignment tables count days
per cluster and calendar class (day of week, or holiday; the
holiday calendar is US federal holidays with observed and bridge days plus
the CSV's State Fair). Early labelling: after the first H local hours of a
held-out day (H = 0: the calendar alone), the classifier's label is compared
with the cluster of the complete day.

    python scripts/daytype_report.py [--png docs/daytypes.png] [--json out.json]

The PNG needs matplotlib (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.controller.daytypes import (  # noqa: E402
    DayTypeClassifier,
    accuracy_by_hour,
    cluster_days,
    daily_matrix,
)
from edge_agent.controller.forecast import load_metro_csv, us_holidays  # noqa: E402

DEFAULT_CSV = ROOT.parent / "shared" / "data" / "metro_interstate_traffic_volume.csv"
SPLIT = date(2017, 10, 1)
CLASSES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "holiday")


def crosstab(labels: np.ndarray, classes: list[str], k: int) -> list[list[int]]:
    return [[int(((labels == c) & (np.array(classes) == cl)).sum()) for cl in CLASSES] for c in range(k)]


def plot(path: Path, types_mean: np.ndarray, shapes_c: np.ndarray, names: list[str], acc: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90, gridspec_kw={"width_ratios": [1.6, 1]})
    hours = np.arange(24) + 0.5
    for c in range(len(types_mean)):
        ax1.plot(hours, types_mean[c], lw=2, label=names[c])
    ax1.set_xlabel("local hour")
    ax1.set_ylabel("veh/h (cluster mean)")
    ax1.set_xlim(0, 24)
    ax1.set_xticks(range(0, 25, 3))
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7, loc="upper left")
    ax1.set_title("I-94 WB day types (k-means on daily shapes)", fontsize=9)
    ax2.plot(np.arange(25), 100 * acc, "o-", ms=3)
    ax2.set_xlabel("hours of the day observed")
    ax2.set_ylabel("% labelled as full-day cluster")
    ax2.set_xlim(0, 24)
    ax2.set_xticks(range(0, 25, 6))
    ax2.grid(alpha=0.3)
    ax2.set_title("early labelling, held-out year", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--png", type=Path, help="write the cluster profiles and the early-labelling curve here")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--k", type=int, help="force k instead of choosing it by silhouette")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    series = load_metro_csv(args.csv)
    hol = us_holidays(range(2012, 2019))
    hol.update(series.holidays)
    dm = daily_matrix(series)
    train = np.array([d < SPLIT for d in dm.dates])
    test = np.array([SPLIT <= d < date(2018, 10, 1) for d in dm.dates])
    classes = ["holiday" if d in hol else d.strftime("%a") for d in dm.dates]
    V = dm.volumes
    # days far below normal (closures, detector failures) would each grab a cluster: set aside, listed
    level = V.mean(1)
    normal = level >= 0.5 * np.median(level)
    anomalous = [(d, float(level[i])) for i, d in enumerate(dm.dates) if not normal[i]]
    train &= normal
    test &= normal
    types = cluster_days(V[train]) if args.k is None else cluster_days(V[train], ks=range(args.k, args.k + 1))
    k = types.k
    lab_all = types.assign(V)
    dates_tr = [d for d, m in zip(dm.dates, train, strict=True) if m]
    dates_te = [d for d, m in zip(dm.dates, test, strict=True) if m]
    clf = DayTypeClassifier(k).fit(V[train], types.labels, dates_tr, hol)
    acc = accuracy_by_hour(clf, V[test], lab_all[test], dates_te, hol)
    elapsed = time.perf_counter() - t0

    cls_arr = np.array(classes)
    names = []
    for c in range(k):
        counts = {cl: int(((types.labels == c) & (cls_arr[train] == cl)).sum()) for cl in CLASSES}
        total = sum(counts.values())
        share = ", ".join(f"{cl} {counts[cl]}" for cl in CLASSES if counts[cl] >= 0.1 * total)
        names.append(f"type {c} ({total} days: {share})")
    print(f"days: {len(dm.dates)} usable ({int(train.sum())} train, {int(test.sum())} held out; "
          f"{int((dm.filled > 0).sum())} with 1-2 hours interpolated)")
    print("mean silhouette by k (train): " + ", ".join(f"k={kk}: {s:.3f}" for kk, s in types.silhouettes.items()))
    print(f"chosen k = {k}" + (" (forced)" if args.k else " (highest mean silhouette)"))
    print(f"set aside as anomalous (daily mean < 50% of the median day): {len(anomalous)} days: "
          + ", ".join(f"{d} ({v:.0f})" for d, v in anomalous))
    for part, mask in (("train", train), ("held-out year", test)):
        print(f"\nclusters vs calendar, {part} (days; rows: type)")
        print("        " + "".join(f"{c:>8s}" for c in CLASSES))
        tab = crosstab(lab_all[mask], list(cls_arr[mask]), k)
        for c, row in enumerate(tab):
            in_c = lab_all[mask] == c
            mean = V[mask][in_c].mean() if in_c.any() else 0.0
            print(f"  type {c}" + "".join(f"{n:8d}" for n in row) + f"   mean {mean:6.0f} veh/h")
    print("\nearly labelling on held-out days (% = labelled as the cluster of the complete day):")
    print("  hours observed: " + " ".join(f"{h:4d}" for h in range(0, 25, 2)))
    print("  accuracy %:     " + " ".join(f"{100 * acc[h]:4.0f}" for h in range(0, 25, 2)))
    first90 = next((h for h in range(25) if acc[h] >= 0.9), None)
    print(f"  first hour count with >= 90%: {first90}")
    # which days disagree with the calendar: weekdays in a non-weekday cluster etc.
    wk_major = int(np.bincount(types.labels[np.isin(cls_arr[train], CLASSES[:5])], minlength=k).argmax())
    odd = [(d, classes[i], int(lab_all[i])) for i, d in enumerate(dm.dates)
           if test[i] and classes[i] in CLASSES[:5] and lab_all[i] != wk_major]
    print(f"\nheld-out weekdays not in the main weekday cluster (type {wk_major}): {len(odd)}")
    for d, _c, lab in odd[:12]:
        print(f"  {d} {d.strftime('%a')} -> type {lab}")
    print(f"\n{elapsed:.1f} s")
    if args.png:
        plot(args.png, np.array([V[train][types.labels == c].mean(0) for c in range(k)]), types.centroids, names, acc)
        print(f"wrote {args.png} ({args.png.stat().st_size / 1024:.0f} KB)")
    if args.json:
        args.json.write_text(json.dumps({
            "k": k, "silhouettes": types.silhouettes, "names": names,
            "anomalous_days": [(str(d), v) for d, v in anomalous],
            "crosstab_train": crosstab(lab_all[train], list(cls_arr[train]), k),
            "crosstab_test": crosstab(lab_all[test], list(cls_arr[test]), k), "columns": CLASSES,
            "accuracy_by_hours_observed": acc.tolist(),
            "odd_weekdays": [(str(d), lab) for d, _c, lab in odd]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
