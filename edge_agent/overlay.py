"""Drawing a camera's setup on one of its frames: lines, zones, lanes and the calibration grid.

Used by ``edge-agent snapshot`` (a still, grid on) and by the annotated video of
``edge-agent run --annotate`` (every frame, grid off by default). Everything is
drawn on the box only; no frame is ever published.

What is drawn, bottom to top:

* the ground grid of the calibration (every ``spacing`` metres, chosen from the
  image's scale at the calibration points), faded out where it would be denser
  than a few pixels (towards the horizon), with a few metre labels;
* zones: a translucent fill, the outline, ``id`` and lane/approach tags, the
  travel arrow (``travel``) and a dashed link to the zone's stop line;
* counting lines: the segment, its ``id`` with lane/approach tags on the "out"
  side, and an arrow labelled ``in`` pointing to the "in" side;
* calibration points: the clicked image point (circle), where the ground point
  maps back to (dot) and the point's error in metres.

Sizes scale with the image (see :class:`Style`), so the drawing reads the same
at 640x360 and 1920x1080.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.config import CameraConfig, LineConfig, ZoneConfig
from edge_agent.geometry import GroundPlane

Image = npt.NDArray[np.uint8]
BGR = tuple[int, int, int]

LINE_COLOUR: BGR = (0, 220, 255)       # yellow: counting lines
IN_COLOUR: BGR = (60, 220, 60)         # green: the "in" arrow
GRID_COLOUR: BGR = (255, 255, 0)       # cyan: ground grid
CALIB_COLOUR: BGR = (255, 0, 255)      # magenta: calibration points
TEXT_COLOUR: BGR = (255, 255, 255)
ZONE_COLOURS: tuple[BGR, ...] = ((255, 120, 40), (40, 80, 255), (200, 60, 200), (40, 200, 255),
                                 (160, 255, 80), (255, 60, 160))  # blue, red, purple, orange, lime, violet
ZONE_ALPHA = 0.25
NICE_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)


def zone_colour(index: int) -> BGR:
    """Colour of the ``index``-th zone of a camera."""
    return ZONE_COLOURS[index % len(ZONE_COLOURS)]


@dataclass(frozen=True)
class Style:
    """Line widths and font sizes for an image size (scale 1 at 720 px on the short side)."""

    scale: float
    thick: int
    font: float
    text_thick: int

    @classmethod
    def for_size(cls, width: int, height: int) -> Style:
        s = max(min(width, height) / 720.0, 0.45)
        return cls(scale=s, thick=max(2, round(2 * s)), font=max(0.4, 0.55 * s), text_thick=max(1, round(1.4 * s)))

    def px(self, n: float) -> int:
        """``n`` pixels at scale 1, at this scale."""
        return max(1, round(n * self.scale))


def put_text(img: Image, text: str, org: tuple[int, int], colour: BGR, style: Style,
             font: float | None = None, anchor: str = "bl") -> tuple[int, int, int, int]:
    """Outlined text kept inside the image; returns its box (x1, y1, x2, y2).

    ``anchor``: which corner of the text ``org`` is: ``bl`` bottom-left, ``c`` centre.
    """
    fs = style.font if font is None else font
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, style.text_thick)
    x, y = org
    if anchor == "c":
        x, y = x - tw // 2, y + th // 2
    h, w = img.shape[:2]
    x = int(min(max(x, 2), max(w - tw - 2, 2)))
    y = int(min(max(y, th + 2), max(h - base - 2, th + 2)))
    # the outline is the text itself shifted around: a thicker stroke would also widen the advance of
    # every glyph (OpenCV adds the thickness to it) and drift away from the text
    o = max(1, style.text_thick)
    for dx, dy in ((-o, -o), (0, -o), (o, -o), (-o, 0), (o, 0), (-o, o), (0, o), (o, o)):
        cv2.putText(img, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), style.text_thick,
                    cv2.LINE_AA)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, fs, colour, style.text_thick, cv2.LINE_AA)
    return x, y - th, x + tw, y + base


def _pt(p: Sequence[float] | npt.NDArray[np.float64]) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _tags(lane: str | None, approach: str | None) -> str:
    return ", ".join(t for t in (f"lane {lane}" if lane else "", approach or "") if t)


def _lighter(colour: BGR) -> BGR:
    """Half way to white: coloured text that still reads on a black outline."""
    b, g, r = colour
    return (b + 255) // 2, (g + 255) // 2, (r + 255) // 2


def panel(img: Image, box: tuple[int, int, int, int], alpha: float = 0.55) -> None:
    """Darken the rectangle ``box`` (x1, y1, x2, y2) of ``img`` in place, as a background for text."""
    x1, y1, x2, y2 = (int(v) for v in box)
    h, w = img.shape[:2]
    x1, x2, y1, y2 = max(0, x1), min(w, x2), max(0, y1), min(h, y2)
    if x2 > x1 and y2 > y1:
        img[y1:y2, x1:x2] = (img[y1:y2, x1:x2] * (1 - alpha)).astype(np.uint8)


def in_normal(line: LineConfig) -> npt.NDArray[np.float64]:
    """Unit vector from the line towards its "in" side, on the image (y down).

    Walking p1 -> p2, the right-hand side is ``(-dy, dx)`` (see :mod:`edge_agent.counting`).
    """
    d = np.subtract(line.p2, line.p1).astype(np.float64)
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
    return n if line.in_side == "right" else -n


def _dashed(img: Image, a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], colour: BGR, thick: int,
            dash: int) -> None:
    length = float(np.hypot(*(b - a)))
    n = max(1, int(length // (2 * dash)))
    for i in range(n + 1):
        t0, t1 = (2 * i * dash) / max(length, 1e-9), ((2 * i + 1) * dash) / max(length, 1e-9)
        if t0 >= 1:
            break
        cv2.line(img, _pt(a + (b - a) * t0), _pt(a + (b - a) * min(t1, 1.0)), colour, thick, cv2.LINE_AA)


# ------------------------------------------------------------------ grid


def nice_step(value: float) -> float:
    """The smallest of 0.5, 1, 2, 5, 10, 20, 50 ... metres that is at least ``value``."""
    return next((s for s in NICE_STEPS if s >= value), NICE_STEPS[-1])


@dataclass
class Grid:
    """A ground grid projected onto one image size.

    Attributes:
        spacing_m: metres between grid lines.
        polylines: image polylines, each ``(is_axis, (n, 2) int32 points)``.
        labels: ``(text, (x, y))`` metre labels at grid intersections.
    """

    spacing_m: float
    polylines: list[tuple[bool, npt.NDArray[np.int32]]] = field(default_factory=list)
    labels: list[tuple[str, tuple[int, int]]] = field(default_factory=list)


def _pixel_scale(plane: GroundPlane, img_pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Metres per image pixel around each of (n, 2) image points (NaN beyond the horizon)."""
    g = plane.to_ground(img_pts)
    gx = plane.to_ground(img_pts + [1.0, 0.0])
    gy = plane.to_ground(img_pts + [0.0, 1.0])
    return (np.hypot(*(gx - g).T) + np.hypot(*(gy - g).T)) / 2  # type: ignore[no-any-return]


def ground_grid(plane: GroundPlane, calib_image: npt.ArrayLike, calib_ground: npt.ArrayLike, width: int,
                height: int, style: Style, spacing_m: float | None = None, max_lines: int = 60,
                avoid: Sequence[tuple[int, int]] = ()) -> Grid:
    """Project a metre grid onto a ``width`` x ``height`` image.

    The spacing (unless given) makes a grid cell about an eighth of the image's
    short side at the centre of the calibration points. The grid covers the
    calibrated area (the ground points) and as much again around it, no more:
    further out the homography is an extrapolation. Within that, only the part
    that is inside the image, in front of the camera, and where a grid cell is
    at least a few pixels wide is drawn: near the horizon the grid would be a
    solid smear. Labels keep clear of the image points in ``avoid``.
    """
    min_px = max(6.0, min(width, height) / 60)
    if spacing_m is None:
        centre = np.asarray(calib_image, np.float64).reshape(-1, 2).mean(axis=0, keepdims=True)
        m_per_px = float(_pixel_scale(plane, centre)[0])
        spacing_m = nice_step(m_per_px * min(width, height) / 8) if np.isfinite(m_per_px) else 5.0
    # the visible ground: image samples in front of the camera where the grid is not too dense
    xs, ys = np.meshgrid(np.linspace(0, width - 1, 48), np.linspace(0, height - 1, 36))
    samples = np.c_[xs.ravel(), ys.ravel()]
    scale = _pixel_scale(plane, samples)
    ok = np.isfinite(scale) & (spacing_m / np.where(np.isfinite(scale), scale, np.inf) >= min_px)
    grid = Grid(spacing_m)
    if not ok.any():
        return grid
    ground = plane.to_ground(samples[ok])
    cg = np.asarray(calib_ground, np.float64).reshape(-1, 2)
    c_lo, c_hi = cg.min(axis=0), cg.max(axis=0)
    pad = np.maximum((c_hi - c_lo) * 0.5, 2 * spacing_m)
    g_lo = np.maximum(ground.min(axis=0), c_lo - pad)
    g_hi = np.minimum(ground.max(axis=0), c_hi + pad)
    if np.any(g_hi <= g_lo):
        return grid
    lo, hi = np.floor(g_lo / spacing_m), np.ceil(g_hi / spacing_m)
    while np.any((hi - lo) > max_lines):  # too fine for this view: coarser
        spacing_m = nice_step(spacing_m * 1.01)
        grid.spacing_m = spacing_m
        lo, hi = np.floor(g_lo / spacing_m), np.ceil(g_hi / spacing_m)
    margin = 2.0 * max(width, height)

    def visible(g: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Image points of (n, 2) ground points and whether each may be drawn."""
        p = plane.to_image(g)
        good = np.isfinite(p).all(axis=1)
        inside = good & (p[:, 0] > -margin) & (p[:, 0] < width + margin) & (p[:, 1] > -margin) \
            & (p[:, 1] < height + margin)
        step = np.full(len(g), np.nan)
        if inside.any():
            px = plane.to_image(g[inside] + [spacing_m, 0.0])
            py = plane.to_image(g[inside] + [0.0, spacing_m])
            step[inside] = np.minimum(np.hypot(*(px - p[inside]).T), np.hypot(*(py - p[inside]).T))
        dense = ~(np.nan_to_num(step, nan=0.0) >= min_px)
        return p, inside & ~dense

    n_samples = 240
    for axis in (0, 1):  # axis 0: lines X = const (running along Y); axis 1: lines Y = const
        other = 1 - axis
        ts = np.linspace(lo[other] * spacing_m, hi[other] * spacing_m, n_samples)
        for k in range(int(lo[axis]), int(hi[axis]) + 1):
            g = np.empty((n_samples, 2))
            g[:, axis] = k * spacing_m
            g[:, other] = ts
            p, keep = visible(g)
            # split into runs of drawable points
            edges = np.flatnonzero(np.diff(np.r_[0, keep.astype(np.int8), 0]))
            for a, b in zip(edges[::2], edges[1::2]):
                if b - a >= 2:
                    grid.polylines.append((k == 0, np.round(p[a:b]).astype(np.int32)))
    # labels: X values along the grid row nearest the camera, Y values along the leftmost column
    kx = np.arange(int(lo[0]), int(hi[0]) + 1)
    ky = np.arange(int(lo[1]), int(hi[1]) + 1)
    gx, gy = np.meshgrid(kx * spacing_m, ky * spacing_m)
    nodes = np.c_[gx.ravel(), gy.ravel()]
    p, keep = visible(nodes)
    edge = style.px(4)  # a label on the image's very edge would hide half its dot
    keep &= (p[:, 0] >= edge) & (p[:, 0] < width - edge) & (p[:, 1] >= edge) & (p[:, 1] < height - edge)
    if keep.any():
        nodes, p = nodes[keep], p[keep]
        min_gap = style.px(70)

        def place(sel: npt.NDArray[np.bool_], value_axis: int, name: str) -> None:
            taken = [np.asarray(xy, np.float64) for xy in avoid] + [np.asarray(xy, np.float64)
                                                                    for _, xy in grid.labels]
            order = np.flatnonzero(sel)[np.argsort(p[sel][:, value_axis])]
            for i in order:
                if all(np.hypot(*(p[i] - q)) >= min_gap for q in taken):
                    grid.labels.append((f"{name}={nodes[i, value_axis]:g} m", _pt(p[i])))
                    taken.append(p[i])

        # the row (constant Y) whose visible nodes are lowest on the image, on average
        rows = {y: p[nodes[:, 1] == y][:, 1].mean() for y in np.unique(nodes[:, 1])}
        near_row = max(rows, key=lambda y: (rows[y], np.count_nonzero(nodes[:, 1] == y)))
        place(nodes[:, 1] == near_row, 0, "x")
        cols = {x: p[nodes[:, 0] == x][:, 0].mean() for x in np.unique(nodes[:, 0])}
        left_col = min(cols, key=lambda x: cols[x])
        place(nodes[:, 0] == left_col, 1, "y")
    return grid


# ------------------------------------------------------------------ the whole setup


class SetupLayer:
    """A camera's setup, laid out once for one image size, drawn onto many frames.

    Args:
        cam: the camera's configuration.
        width, height: size of the frames it is drawn on.
        grid: draw the calibration's ground grid (when the camera has a calibration).
        calibration_points: draw the calibration points with their errors.
        info: draw a caption (camera, grid spacing, calibration error) at the bottom left.
    """

    def __init__(self, cam: CameraConfig, width: int, height: int, grid: bool = True,
                 calibration_points: bool = True, info: bool = True):
        self.cam = cam
        self.size = (width, height)
        self.style = Style.for_size(width, height)
        self.plane = cam.calibration.plane() if cam.calibration is not None else None
        self.grid: Grid | None = None
        if self.plane is not None and grid and cam.calibration is not None:
            pts = cam.calibration.points
            self.grid = ground_grid(self.plane, [p.image for p in pts], [p.ground for p in pts], width, height,
                                    self.style, avoid=[_pt(p.image) for p in pts])
        self.calibration_points = calibration_points and self.plane is not None
        self.info = info
        self._fill = self._zone_fill(width, height)

    def _zone_fill(self, width: int, height: int) -> tuple[tuple[int, int, int, int], Image,
                                                           npt.NDArray[np.bool_]] | None:
        """The zones' colours and mask over the rectangle that holds them (blended onto each frame)."""
        polys = [np.round(np.asarray(z.polygon)).astype(np.int32) for z in self.cam.zones]
        if not polys:
            return None
        allp = np.concatenate(polys)
        x1, y1 = max(0, int(allp[:, 0].min())), max(0, int(allp[:, 1].min()))
        x2, y2 = min(width, int(allp[:, 0].max()) + 1), min(height, int(allp[:, 1].max()) + 1)
        if x2 <= x1 or y2 <= y1:
            return None
        fill = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
        for i, poly in enumerate(polys):
            cv2.fillPoly(fill, [poly - [x1, y1]], zone_colour(i))
            cv2.fillPoly(mask, [poly - [x1, y1]], 255)
        return (x1, y1, x2, y2), fill, mask > 0

    def caption(self) -> str:
        parts = [f"camera {self.cam.id}"]
        if self.grid is not None:
            parts.append(f"grid {self.grid.spacing_m:g} m")
        if self.plane is not None:
            parts.append(f"calibration error rms {self.plane.rms_error_m:.2f} m, "
                         f"max {float(self.plane.errors_m.max()):.2f} m")
        return ", ".join(parts)

    def draw(self, image: Image) -> Image:
        """Draw onto ``image`` in place and return it."""
        st, cam = self.style, self.cam
        img = image
        if self.grid is not None:
            for axis, pts in self.grid.polylines:
                cv2.polylines(img, [pts], False, GRID_COLOUR, st.thick if axis else max(1, st.thick - 1),
                              cv2.LINE_AA)
        if self._fill is not None:
            (x1, y1, x2, y2), fill, mask = self._fill
            roi = img[y1:y2, x1:x2]
            roi[mask] = cv2.addWeighted(fill, ZONE_ALPHA, roi, 1 - ZONE_ALPHA, 0)[mask]
        for i, z in enumerate(cam.zones):
            self._zone(img, z, zone_colour(i))
        for line in cam.lines:
            self._line(img, line)
        if self.calibration_points and self.plane is not None and cam.calibration is not None:
            back = self.plane.to_image([p.ground for p in cam.calibration.points])
            for i, (p, q, err) in enumerate(zip(cam.calibration.points, back, self.plane.errors_m)):
                c = _pt(p.image)
                if np.isfinite(q).all():
                    cv2.line(img, c, _pt(q), CALIB_COLOUR, 1, cv2.LINE_AA)
                    cv2.circle(img, _pt(q), st.px(3), CALIB_COLOUR, -1, cv2.LINE_AA)
                cv2.circle(img, c, st.px(7), CALIB_COLOUR, st.thick, cv2.LINE_AA)
                put_text(img, f"P{i} {err:.2f} m", (c[0] + st.px(9), c[1] - st.px(6)), CALIB_COLOUR, st,
                         font=st.font * 0.85)
        if self.grid is not None:
            for text, xy in self.grid.labels:
                cv2.circle(img, xy, st.px(3), GRID_COLOUR, -1, cv2.LINE_AA)
                put_text(img, text, (xy[0] + st.px(4), xy[1] - st.px(4)), GRID_COLOUR, st, font=st.font * 0.8)
        if self.info:
            text = self.caption()
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, st.font, st.text_thick)
            h, pad = img.shape[0], st.px(5)
            x1, y1 = 0, h - th - base - 2 * pad - st.px(4)
            panel(img, (x1, y1, min(tw + 2 * pad + st.px(8), img.shape[1]), h))
            put_text(img, text, (st.px(8), h - base - pad - st.px(2)), TEXT_COLOUR, st)
        return img

    def _zone(self, img: Image, z: ZoneConfig, colour: BGR) -> None:
        st = self.style
        poly = np.asarray(z.polygon, np.float64)
        cv2.polylines(img, [np.round(poly).astype(np.int32)], True, colour, st.thick, cv2.LINE_AA)
        centre = poly.mean(axis=0)
        if z.stop_line is not None:
            stop = next((ln for ln in self.cam.lines if ln.id == z.stop_line), None)
            if stop is not None:
                mid = (np.asarray(stop.p1) + np.asarray(stop.p2)) / 2
                _dashed(img, centre, mid, colour, max(1, st.thick - 1), st.px(8))
        if z.travel is not None:
            a, b = np.asarray(z.travel[0], np.float64), np.asarray(z.travel[1], np.float64)
            length = max(float(np.hypot(*(b - a))), 1.0)
            cv2.arrowedLine(img, _pt(a), _pt(b), (0, 0, 0), st.thick + 3, cv2.LINE_AA,
                            tipLength=min(0.4, st.px(18) / length))
            cv2.arrowedLine(img, _pt(a), _pt(b), colour, st.thick + 1, cv2.LINE_AA,
                            tipLength=min(0.4, st.px(18) / length))
        # the label sits just above the zone's top-left corner, clear of the travel arrow inside
        tags = _tags(z.lane, z.approach)
        label = z.id + (f" ({tags})" if tags else "")
        light = _lighter(colour)
        x0, y0 = int(poly[:, 0].min()), int(poly[:, 1].min())
        put_text(img, label, (x0, y0 - st.px(5)), light, st)
        extra = []
        if z.stop_line:
            extra.append(f"stop line: {z.stop_line}")
        if z.no_stopping_s:
            extra.append(f"no stopping > {z.no_stopping_s:g} s")
        if extra:
            (_, th), _ = cv2.getTextSize("A", cv2.FONT_HERSHEY_SIMPLEX, st.font * 0.8, st.text_thick)
            put_text(img, ", ".join(extra), (x0 + st.px(4), y0 + th + st.px(6)), light, st, font=st.font * 0.8)

    def _line(self, img: Image, line: LineConfig) -> None:
        st = self.style
        p1, p2 = np.asarray(line.p1, np.float64), np.asarray(line.p2, np.float64)
        cv2.line(img, _pt(p1), _pt(p2), (0, 0, 0), st.thick + 2, cv2.LINE_AA)
        cv2.line(img, _pt(p1), _pt(p2), LINE_COLOUR, st.thick, cv2.LINE_AA)
        cv2.circle(img, _pt(p1), st.px(4), LINE_COLOUR, -1, cv2.LINE_AA)
        n = in_normal(line)
        mid = (p1 + p2) / 2
        tip = mid + n * st.px(36)
        cv2.arrowedLine(img, _pt(mid), _pt(tip), (0, 0, 0), st.thick + 3, cv2.LINE_AA, tipLength=0.35)
        cv2.arrowedLine(img, _pt(mid), _pt(tip), IN_COLOUR, st.thick + 1, cv2.LINE_AA, tipLength=0.35)
        put_text(img, "in", _pt(tip + n * st.px(12)), IN_COLOUR, st, font=st.font * 0.85, anchor="c")
        tags = _tags(line.lane, line.approach)
        label = line.id + (f" ({tags})" if tags else "")
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, st.font, st.text_thick)
        # on the "out" side, far enough that the text box clears the line
        off = st.px(14) + abs(n[0]) * tw / 2 + abs(n[1]) * th / 2
        put_text(img, label, _pt(mid - n * off), LINE_COLOUR, st, anchor="c")


def draw_setup(image: Image, cam: CameraConfig, *, grid: bool = True, calibration_points: bool = True,
               info: bool = True) -> Image:
    """A copy of ``image`` with the camera's lines, zones and (if calibrated) ground grid drawn on it.

    Args:
        image: (h, w, 3) uint8 BGR frame of the camera.
        cam: the camera's configuration.
        grid: draw the ground grid of the calibration.
        calibration_points: mark the calibration points with their reprojection errors.
        info: a caption with the camera id, grid spacing and calibration error.
    """
    out = np.ascontiguousarray(image).copy()
    SetupLayer(cam, out.shape[1], out.shape[0], grid, calibration_points, info).draw(out)
    return out
