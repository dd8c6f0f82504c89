"""Charts drawn on the server as inline SVG: no script, no request to another host.

Every piece is built with format_html, so each label and number is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from extractor.selectors.stats import Bucket

register = template.Library()

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 30
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
MAX_X_LABELS = 12


def _join(parts: Iterable[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _counts(hits: int, misses: int, errors: int) -> str:
    return (
        f"{_plural(hits, 'hit', 'hits')}, {_plural(misses, 'miss', 'misses')}, "
        f"{_plural(errors, 'error', 'errors')}"
    )


def _axis_label(bucket: Bucket, size: str) -> str:
    start = timezone.localtime(bucket.start)
    if size == "hour" and (start.hour or start.minute):
        return dateformat.format(start, "H:i")
    return dateformat.format(start, "j M")


def _long_label(bucket: Bucket, size: str) -> str:
    start = timezone.localtime(bucket.start)
    return dateformat.format(start, "D j M Y, H:i" if size == "hour" else "D j M Y")


def _scale(highest: int) -> tuple[int, int]:
    """A round top for the y axis and the step between its ticks (about four ticks)."""
    if highest <= 4:
        return max(highest, 1), 1
    rough = highest / 4
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    return math.ceil(highest / step) * step, step


@register.simple_tag
def hit_miss_chart(
    series: Sequence[Bucket], size: str, title: str = "Hits, misses and errors"
) -> SafeString:
    """Hits, misses and errors stacked per bucket ("hour" or "day"), with a table of
    the numbers for whoever cannot see the chart."""
    if not series:
        return format_html('<p class="muted">{}</p>', "No hits, misses or errors in this window.")
    top, step = _scale(max(bucket.total for bucket in series))
    hits = sum(bucket.hits for bucket in series)
    misses = sum(bucket.misses for bucket in series)
    errors = sum(bucket.errors for bucket in series)
    per = "hour" if size == "hour" else "day"
    summary = (
        f"{title} per {per}, {_long_label(series[0], size)} to {_long_label(series[-1], size)}: "
        f"{_counts(hits, misses, errors)} in total."
    )
    baseline = TOP + PLOT_HEIGHT
    return format_html(
        '<figure class="chart hit-miss-chart">'
        '<svg viewBox="0 0 {width} {height}" role="img" aria-label="{summary}"'
        ' xmlns="http://www.w3.org/2000/svg">'
        '<line class="axis" x1="{left}" x2="{right}" y1="{baseline}" y2="{baseline}"/>'
        "{grid}{bars}</svg>"
        '<figcaption class="legend"><span class="key key-hit"></span> Hits'
        ' <span class="key key-miss"></span> Misses'
        ' <span class="key key-error"></span> Errors <span class="muted">(per {per})</span>'
        "</figcaption>"
        '<details class="chart-data"><summary>The numbers</summary>'
        '<div class="table-scroll"><table><caption class="visually-hidden">{summary}</caption>'
        '<thead><tr><th scope="col">{per_title}</th><th scope="col" class="num">Hits</th>'
        '<th scope="col" class="num">Misses</th><th scope="col" class="num">Errors</th></tr>'
        "</thead><tbody>{rows}</tbody></table></div></details></figure>",
        width=WIDTH,
        height=HEIGHT,
        summary=summary,
        left=LEFT,
        right=WIDTH - RIGHT,
        baseline=baseline,
        grid=_grid(top, step),
        bars=_bars(series, size, top),
        per=per,
        per_title=per.capitalize(),
        rows=format_html_join(
            "",
            '<tr><th scope="row">{}</th><td class="num">{}</td><td class="num">{}</td>'
            '<td class="num">{}</td></tr>',
            (
                (_long_label(bucket, size), bucket.hits, bucket.misses, bucket.errors)
                for bucket in series
            ),
        ),
    )


def _grid(top: int, step: int) -> SafeString:
    """A horizontal line and a label for each tick of the y axis."""
    lines = []
    for tick in range(0, top + 1, step):
        y = TOP + PLOT_HEIGHT - tick / top * PLOT_HEIGHT
        lines.append(
            format_html(
                '<line class="grid" x1="{left}" x2="{right}" y1="{y}" y2="{y}"/>'
                '<text class="tick" x="{label_x}" y="{label_y}" text-anchor="end">{tick}</text>',
                left=LEFT,
                right=WIDTH - RIGHT,
                y=_n(y),
                label_x=LEFT - 6,
                label_y=_n(y + 4),
                tick=tick,
            )
        )
    return _join(lines)


def _bars(series: Sequence[Bucket], size: str, top: int) -> SafeString:
    """One group per bucket (hits at the bottom, then misses, errors on top) and the x
    axis labels."""
    slot = PLOT_WIDTH / len(series)
    width = max(slot * 0.7, 1.0)
    every = math.ceil(len(series) / MAX_X_LABELS)
    baseline = TOP + PLOT_HEIGHT
    groups, labels = [], []
    for index, bucket in enumerate(series):
        x = LEFT + index * slot + (slot - width) / 2
        hit_height = bucket.hits / top * PLOT_HEIGHT
        miss_height = bucket.misses / top * PLOT_HEIGHT
        error_height = bucket.errors / top * PLOT_HEIGHT
        groups.append(
            format_html(
                '<g class="bucket" data-start="{start}" data-hits="{hits}" data-misses="{misses}"'
                ' data-errors="{errors}">'
                "<title>{label}: {counts}</title>"
                '<rect class="bar-hit" x="{x}" y="{hit_y}" width="{width}" height="{hit_height}"'
                ' fill="#1b7f4b"/>'
                '<rect class="bar-miss" x="{x}" y="{miss_y}" width="{width}" height="{miss_height}"'
                ' fill="#a15c00"/>'
                '<rect class="bar-error" x="{x}" y="{error_y}" width="{width}"'
                ' height="{error_height}" fill="#b42318"/>'
                "</g>",
                start=bucket.start.isoformat(),
                hits=bucket.hits,
                misses=bucket.misses,
                errors=bucket.errors,
                label=_long_label(bucket, size),
                counts=_counts(bucket.hits, bucket.misses, bucket.errors),
                x=_n(x),
                width=_n(width),
                hit_y=_n(baseline - hit_height),
                hit_height=_n(hit_height),
                miss_y=_n(baseline - hit_height - miss_height),
                miss_height=_n(miss_height),
                error_y=_n(baseline - hit_height - miss_height - error_height),
                error_height=_n(error_height),
            )
        )
        if index % every == 0:
            labels.append(
                format_html(
                    '<text class="tick" x="{x}" y="{y}" text-anchor="middle">{label}</text>',
                    x=_n(x + width / 2),
                    y=HEIGHT - 10,
                    label=_axis_label(bucket, size),
                )
            )
    return _join(groups + labels)
