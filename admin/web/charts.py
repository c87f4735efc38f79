"""Small server-side SVG charts: no script, no chart library, nothing fetched from elsewhere.

Each bar and point carries its value in a <title> (a tooltip) and in
`data-` attributes, so the numbers are there for people and for tests alike.
"""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 64, 10, 10, 28
COLOURS = ("#2450a8", "#d97706", "#1b7a3d", "#b3261e")


def _scale(values: list[float]) -> float:
    top = max((v for v in values if v is not None), default=0) or 1
    return top * 1.1


def _frame(title: str, top: float, unit: str, body: str, legend: str = "") -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    ticks = "".join(
        f'<text x="{LEFT - 6}" y="{TOP + plot_h * (1 - f) + 4:.1f}" text-anchor="end" '
        f'font-size="10" fill="#5d6678">{top * f:.4g}{escape(unit)}</text>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h * (1 - f):.1f}" '
        f'y2="{TOP + plot_h * (1 - f):.1f}" stroke="#eceef2"/>'
        for f in (0, 0.5, 1)
    )
    return Markup(
        f'<figure class="chart" data-chart="{escape(title)}"><h3>{escape(title)}</h3>{legend}'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"{ticks}{body}</svg></figure>"
    )


def _no_data(title: str) -> Markup:
    return Markup(
        f'<figure class="chart" data-chart="{escape(title)}"><h3>{escape(title)}</h3>'
        '<p class="empty">No data yet: send a request through the proxy.</p></figure>'
    )


def _x_labels(labels: list[str], step: float) -> str:
    every = max(1, len(labels) // 8)
    return "".join(
        f'<text x="{LEFT + step * (i + 0.5):.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
        f'font-size="10" fill="#5d6678">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    )


def bar_chart(title: str, labels: list[str], values: list[float], unit: str = "") -> Markup:
    if not labels:
        return _no_data(title)
    top = _scale(values)
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / len(labels)
    bars = "".join(
        f'<rect x="{LEFT + step * i + step * 0.15:.1f}" width="{step * 0.7:.1f}" '
        f'y="{TOP + plot_h * (1 - value / top):.1f}" height="{plot_h * value / top:.1f}" '
        f'fill="{COLOURS[0]}" data-label="{escape(label)}" data-value="{value:g}">'
        f"<title>{escape(label)}: {value:g}{escape(unit)}</title></rect>"
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
    )
    return _frame(title, top, unit, bars + _x_labels(labels, step))


def line_chart(
    title: str, labels: list[str], series: dict[str, list[float | None]], unit: str = ""
) -> Markup:
    if not labels:
        return _no_data(title)
    top = _scale([v for values in series.values() for v in values])
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / len(labels)
    body, legend = "", []
    for (name, values), colour in zip(series.items(), COLOURS, strict=False):
        points = [
            (LEFT + step * (i + 0.5), TOP + plot_h * (1 - v / top), label, v)
            for i, (label, v) in enumerate(zip(labels, values, strict=True))
            if v is not None
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        body += f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
        body += "".join(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}" '
            f'data-series="{escape(name)}" data-label="{escape(label)}" data-value="{v:g}">'
            f"<title>{escape(name)} at {escape(label)}: {v:g}{escape(unit)}</title></circle>"
            for x, y, label, v in points
        )
        legend.append(f'<span style="color:{colour}">■ {escape(name)}</span>')
    return _frame(title, top, unit, body + _x_labels(labels, step), " ".join(legend))
