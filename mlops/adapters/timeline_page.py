"""An endpoint's timeline as one self-contained HTML page: plotly's figure (its JavaScript
inside the page, so it opens offline) over tables of every action, check and alarm change.

plotly is imported on first use only (it comes with Evidently): the CLI's other commands
never pay for it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from mlops.core.names import CHALLENGER, CHAMPION
from mlops.core.timeline import Action, AlarmChange, Check, Timeline

COLOURS = {CHAMPION: "#1f77b4", CHALLENGER: "#ff7f0e"}
OTHER_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2")
STATE_COLOURS = {"ALARM": "#d62728", "OK": "#2ca02c", "INSUFFICIENT_DATA": "#7f7f7f"}
ACTION_SYMBOLS = {"rollback": "x", "rollout-step": "triangle-up", "shift": "diamond",
                  "deploy": "star", "promote": "star-diamond"}  # fmt: skip

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .note { color: #8a4b00; } .muted { color: #666; }
"""


def package_label(arn: str | None) -> str:
    """``group/version`` of a model package ARN (what a reader knows a model by)."""
    if not arn:
        return "-"
    return "/".join(arn.rsplit("/", 2)[-2:]) if "model-package/" in arn else arn


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(weights.items())) or "-"


def _colour(variant: str, order: Sequence[str]) -> str:
    if variant in COLOURS:
        return COLOURS[variant]
    others = [v for v in order if v not in COLOURS]
    return (
        OTHER_COLOURS[others.index(variant) % len(OTHER_COLOURS)] if variant in others else "#333"
    )


def _action_hover(action: Action) -> str:
    lines = [
        f"<b>{html.escape(action.action)}</b> ({action.source}) {_time(action.at)}",
        f"reason: {html.escape(action.reason)}",
        f"by: {html.escape(action.requested_by)}",
        f"{html.escape(action.outcome)}",
    ]
    if action.weights_before:
        lines.append(
            f"weights: {_weights(action.weights_before)} -> {_weights(action.weights_after)}"
        )
    elif action.weights_after:
        lines.append(f"weights: {_weights(action.weights_after)}")
    if action.models:
        lines.append(
            "models: " + ", ".join(f"{r} {package_label(a)}" for r, a in action.models.items())
        )
    return "<br>".join(lines)


def _check_hover(check: Check) -> str:
    share = "-" if check.drift_share is None else f"{check.drift_share:.2f}"
    drifted = ", ".join(check.drifted_features) or "none"
    prediction = "-" if check.prediction_score is None else f"{check.prediction_score:.3g}"
    return "<br>".join([
        f"<b>{check.variant}: {check.status}</b> (window {_time(check.window_start)} - {_time(check.at)})",
        f"drift share {share} ({len(check.drifted_features)} of {check.features} features: {drifted})",
        f"prediction drift {prediction} ({check.prediction_statistic or '-'}, threshold "
        f"{check.prediction_threshold if check.prediction_threshold is not None else '-'})",
        f"{check.rows} rows; model {package_label(check.model)}",
    ])  # fmt: skip


def figure(timeline: Timeline) -> Any:
    """The plotly figure: weights and actions, drift share, prediction drift, alarms."""
    import plotly.graph_objects as go  # noqa: PLC0415 - on first use only

    fig = go.Figure().set_subplots(
        rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.34, 0.22, 0.22, 0.22],
        subplot_titles=("variant weights and traffic actions", "drift share (features) per check",
                        "prediction drift per check", "alarm state changes"),
    )  # fmt: skip
    order = timeline.variants
    for variant, steps in timeline.weights.items():
        fig.add_trace(go.Scatter(
            x=[t for t, _ in steps], y=[w for _, w in steps], name=f"{variant} weight",
            mode="lines+markers", line={"shape": "hv", "color": _colour(variant, order)},
            legendgroup=variant, hovertemplate=f"{variant} weight %{{y:g}}<extra></extra>",
        ), row=1, col=1)  # fmt: skip
    if timeline.actions:
        fig.add_trace(go.Scatter(
            x=[a.at for a in timeline.actions], y=[1.08] * len(timeline.actions),
            mode="markers+text", name="actions", text=[a.action for a in timeline.actions],
            textposition="top center", hovertext=[_action_hover(a) for a in timeline.actions],
            hoverinfo="text",
            marker={"size": 11, "color": ["#d62728" if a.action == "rollback" else "#444"
                                          for a in timeline.actions],
                    "symbol": [ACTION_SYMBOLS.get(a.action, "circle") for a in timeline.actions]},
        ), row=1, col=1)  # fmt: skip
    fig.update_yaxes(range=[-0.05, 1.25], title_text="weight", row=1, col=1)
    for row, value, limit in ((2, "drift_share", "share_threshold"),
                              (3, "prediction_score", "prediction_threshold")):  # fmt: skip
        _check_traces(fig, go, timeline.checks, order, row, value, limit)
    fig.update_yaxes(title_text="share", row=2, col=1)
    fig.update_yaxes(title_text="score", row=3, col=1)
    _alarm_traces(fig, go, timeline.alarms)
    fig.update_layout(
        height=1000, hovermode="closest", template="plotly_white",
        title=f"{timeline.endpoint}: weights, actions, drift and alarms over time",
        legend={"orientation": "h", "y": -0.05},
    )  # fmt: skip
    return fig


def _check_traces(
    fig: Any, go: Any, checks: list[Check], order: list[str], row: int, value: str, limit: str
) -> None:
    for variant in order:
        mine = [c for c in checks if c.variant == variant and getattr(c, value) is not None]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[c.at for c in mine], y=[getattr(c, value) for c in mine],
            name=f"{variant} {value.replace('_', ' ')}", mode="lines+markers", legendgroup=variant,
            line={"color": _colour(variant, order)}, hovertext=[_check_hover(c) for c in mine],
            hoverinfo="text",
            marker={"size": 10, "symbol": ["x" if c.status == "drift" else "circle" for c in mine]},
        ), row=row, col=1)  # fmt: skip
        limits = [getattr(c, limit) for c in mine]
        if any(v is not None for v in limits):
            fig.add_trace(go.Scatter(
                x=[c.at for c in mine], y=limits, name=f"{variant} threshold", mode="lines",
                line={"dash": "dot", "color": _colour(variant, order)}, legendgroup=variant,
                showlegend=False, hovertemplate="threshold %{y:g}<extra></extra>",
            ), row=row, col=1)  # fmt: skip


def _alarm_traces(fig: Any, go: Any, alarms: list[AlarmChange]) -> None:
    for state, colour in STATE_COLOURS.items():
        mine = [a for a in alarms if a.new == state]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[a.at for a in mine], y=[a.alarm for a in mine], mode="markers", name=state,
            marker={"size": 12, "color": colour, "symbol": "square"}, hoverinfo="text",
            hovertext=[f"<b>{html.escape(a.alarm)}</b> {a.old or '?'} -> {a.new} {_time(a.at)}"
                       f"<br>{html.escape(a.reason)}" for a in mine],
        ), row=4, col=1)  # fmt: skip


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tables(timeline: Timeline) -> str:
    actions = _table(
        ("time", "source", "action", "requested by", "reason", "outcome", "weights before",
         "weights after", "models"),
        ((_time(a.at), a.source, a.action, a.requested_by, a.reason, a.outcome,
          _weights(a.weights_before), _weights(a.weights_after) if a.changed else "unchanged",
          ", ".join(f"{r} {package_label(p)}" for r, p in a.models.items()) or "-")
         for a in timeline.actions),
    )  # fmt: skip
    checks = _table(
        ("window end", "variant", "status", "rows", "drift share", "drifted features",
         "prediction drift", "model", "report"),
        ((_time(c.at), c.variant, c.status, str(c.rows),
          "-" if c.drift_share is None else f"{c.drift_share:.2f}",
          ", ".join(c.drifted_features) or "none",
          "-" if c.prediction_score is None else f"{c.prediction_score:.3g}"
          + (" (drift)" if c.prediction_drifted else ""),
          package_label(c.model), c.report or "-")
         for c in timeline.checks),
    )  # fmt: skip
    alarms = _table(
        ("time", "alarm", "variant", "from", "to", "reason"),
        ((_time(a.at), a.alarm, a.variant or "-", a.old or "?", a.new, a.reason)
         for a in timeline.alarms),
    )  # fmt: skip
    return (
        f"<h2>Traffic and serving actions ({len(timeline.actions)})</h2>{actions}"
        f"<h2>Drift checks ({len(timeline.checks)})</h2>{checks}"
        f"<h2>Alarm state changes ({len(timeline.alarms)})</h2>{alarms}"
    )


def render(timeline: Timeline, *, generated_at: datetime, sources: Sequence[str] = ()) -> str:
    """The whole page. An endpoint with no records yet gets a page that says so."""
    name = html.escape(timeline.endpoint)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{name}: endpoint history</title><style>{STYLE}</style></head><body>",
        f"<h1>{name}: endpoint history</h1>",
        f"<p class='muted'>Made {_time(generated_at)} from the records the platform wrote: "
        + html.escape("; ".join(sources))
        + "</p>",
    ]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in timeline.notes]
    if timeline.empty:
        parts.append(
            f"<p><b>No records yet</b> for {name}: no traffic or serving action, drift check "
            "or alarm change has been recorded.</p>"
        )
    else:
        start, end = timeline.start, timeline.end
        span = f"{_time(start)} to {_time(end)}" if start and end else ""
        parts.append(
            f"<p>{span}: {len(timeline.actions)} actions, {len(timeline.checks)} drift checks, "
            f"{len(timeline.alarms)} alarm changes. Hover a point for its reason and values.</p>"
        )
        parts.append(figure(timeline).to_html(full_html=False, include_plotlyjs=True))
        parts.append(_tables(timeline))
    parts.append("</body></html>\n")
    return "\n".join(parts)
