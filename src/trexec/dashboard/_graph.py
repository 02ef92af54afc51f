"""A workflow run's step graph as inline SVG (spec §12.5).

Columns are dependency depth (a step sits one column right of its deepest
dependency), rows keep the workflow's step order; an arrow goes from each
dependency to the step. Every name is escaped here, where the markup is built;
colours come from the page's stylesheet through a ``status-<status>`` class,
so the SVG needs no inline style (the pages' CSP forbids it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["step_graph"]

WIDTH, HEIGHT = 160, 34  # one step's box
GAP_X, GAP_Y, PAD = 56, 14, 8
MAX_LABEL = 20
#: Statuses with a colour in the stylesheet (spec §6.5); anything else is "unknown".
STEP_STATUSES = ("pending", "running", "done", "failed", "skipped")


def _depths(names: Sequence[str], after: Mapping[str, Sequence[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(name: str, seen: frozenset[str]) -> int:
        if name not in depth:
            # A dependency that is not a step of this run, or a cycle (a corrupt
            # state), is ignored rather than looped on.
            deps = [d for d in after.get(name, ()) if d in names and d not in seen]
            depth[name] = 1 + max((visit(d, seen | {name}) for d in deps), default=-1)
        return depth[name]

    for name in names:
        visit(name, frozenset())
    return depth


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def step_graph(steps: Mapping[str, str], after: Mapping[str, Sequence[str]]) -> str:
    """SVG markup of the graph: ``steps`` maps each step (in workflow order) to
    its status, ``after`` each step to the steps it runs after. The result is
    safe to insert in HTML as is: every name in it is escaped."""
    names = list(steps)
    depth = _depths(names, after)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for name in names:
        column = depth[name]
        row = rows.get(column, 0)
        rows[column] = row + 1
        place[name] = (PAD + column * (WIDTH + GAP_X), PAD + row * (HEIGHT + GAP_Y))
    width = PAD * 2 + (max(depth.values(), default=0) + 1) * (WIDTH + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (HEIGHT + GAP_Y) - GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="step-graph" role="img"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        "<title>step graph</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="arrow"/>'
        "</marker></defs>",
    ]
    for name in names:
        x2, y2 = place[name]
        for dep in after.get(name, ()):
            if dep not in place:
                continue
            x1, y1 = place[dep]
            sx, sy, ex, ey = x1 + WIDTH, y1 + HEIGHT // 2, x2, y2 + HEIGHT // 2
            mid = (sx + ex) // 2
            parts.append(
                f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"'
                ' marker-end="url(#arrow)"/>'
            )
    for name in names:
        x, y = place[name]
        status = steps[name] if steps[name] in STEP_STATUSES else "unknown"
        parts.append(
            f'<g class="node status-{status}" data-step="{escape(name)}">'
            f"<title>{escape(name)}: {escape(str(steps[name]))}</title>"
            f'<rect x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" rx="6"/>'
            f'<text x="{x + 10}" y="{y + 15}" class="name">{escape(_label(name))}</text>'
            f'<text x="{x + 10}" y="{y + 28}" class="status">{escape(status)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
