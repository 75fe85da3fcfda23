"""Sphinx extension: the Prometheus metrics reference, generated from ``hub_ext/hub/metrics.py``.

Provides the directive ``labhub-metrics``. It imports :mod:`hub_ext.hub.metrics` and renders one row
per metric object: the names Prometheus stores (``_total`` for counters, ``_bucket``/``_sum``/
``_count`` for histograms), the type, the labels and the help text written in the module, plus
histogram buckets. The page is rebuilt whenever the module changes.
"""

from __future__ import annotations

from typing import Any

from docnodes import entry
from docutils import nodes
from docutils.parsers.rst import Directive

SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "gauge": ("",),
}


def metric_rows() -> list[tuple[str, list[str], str, tuple[str, ...], str]]:
    """(Python name, exported series names, type, labels, help) of every LabHub metric."""
    from prometheus_client.metrics import MetricWrapperBase

    from hub_ext.hub import metrics

    out = []
    for attr in metrics.__all__:
        metric = getattr(metrics, attr)
        if not isinstance(metric, MetricWrapperBase):
            continue
        kind = metric._type
        series = [metric._name + s for s in SUFFIXES.get(kind, ("",))]
        help_text = metric._documentation
        if kind == "histogram":
            bounds = [b for b in metric._upper_bounds if b != float("inf")]
            help_text += " Buckets (upper bounds): " + ", ".join(f"{b:g}" for b in bounds) + "."
        out.append((attr, series, kind, tuple(metric._labelnames), help_text))
    return sorted(out, key=lambda r: r[1][0])


def _literals(items: list[str] | tuple[str, ...]) -> list[nodes.Node]:
    parts: list[nodes.Node] = []
    for i, item in enumerate(items):
        if i:
            parts.append(nodes.Text(", "))
        parts.append(nodes.literal(item, item))
    return parts


class LabHubMetrics(Directive):
    """``labhub-metrics``: a table of every ``labhub_*`` metric."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        import hub_ext.hub.metrics as module

        self.state.document.settings.env.note_dependency(str(module.__file__))
        table = nodes.table(classes=["labhub-metrics"])
        group = nodes.tgroup(cols=4)
        table += group
        for width in (30, 10, 20, 40):
            group += nodes.colspec(colwidth=width)
        head, header = nodes.thead(), nodes.row()
        for title in ("Metric", "Type", "Labels", "Meaning"):
            header += entry(nodes.Text(title))
        head += header
        group += head
        body = nodes.tbody()
        for attr, series, kind, labels, help_text in metric_rows():
            row = nodes.row()
            cell = _literals(series)
            cell += [nodes.Text(" (Python: "), nodes.literal(attr, attr), nodes.Text(")")]
            row += entry(*cell)
            row += entry(nodes.Text(kind))
            row += entry(*_literals(labels)) if labels else entry(nodes.Text("none"))
            row += entry(nodes.Text(help_text))
            body += row
        group += body
        return [table]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("labhub-metrics", LabHubMetrics)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
