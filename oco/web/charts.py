"""Charts drawn on the server as SVG: no script, no library, readable without colour (every bar has a
tooltip and the figures stand in a table beside it)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from oco.services.views import DayPublic

WIDTH, HEIGHT = 720, 180
AXIS = 28
PARTS = (("succeeded", "succeeded"), ("failed", "failed"), ("expired", "expired"))


def outcome_chart(days: Sequence[DayPublic]) -> Markup:
    """Stacked bars of the jobs that succeeded, failed and expired each day."""
    peak = max((d.succeeded + d.failed + d.expired for d in days), default=0) or 1
    slot = (WIDTH - AXIS) / max(len(days), 1)
    bar = max(slot * 0.7, 1)
    plot = HEIGHT - 22
    shapes: list[str] = []
    for index, day in enumerate(days):
        x = AXIS + index * slot + (slot - bar) / 2
        top = plot
        total = day.succeeded + day.failed + day.expired
        for field, css in PARTS:
            count = getattr(day, field)
            if not count:
                continue
            height = count / peak * (plot - 8)
            top -= height
            shapes.append(
                f'<rect class="{css}" x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{height:.1f}">'
                f"<title>{escape(day.day.isoformat())}: {count} {field}</title></rect>"
            )
        if index % 5 == 0 or index == len(days) - 1:
            shapes.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{day.day:%d %b}</text>'
            )
        if total and total == peak:
            shapes.append(
                f'<text x="{x + bar / 2:.1f}" y="{top - 3:.1f}" text-anchor="middle">{total}</text>'
            )
    shapes.append(f'<line x1="{AXIS}" y1="{plot}" x2="{WIDTH}" y2="{plot}" class="axis"/>')
    shapes.append(f'<text x="{AXIS - 4}" y="12" text-anchor="end">{peak}</text>')
    label = "Jobs per day over the last 30 days: succeeded, failed and expired"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" '
        f'preserveAspectRatio="xMidYMid meet">{"".join(shapes)}</svg>'
    )
