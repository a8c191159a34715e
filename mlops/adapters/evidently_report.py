"""The human-readable drift report: Evidently's DataDriftPreset rendered as HTML.

The verdicts of record come from mlops.core.drift_stats (the same tests over every row, ~10x faster than
the preset). The preset is what people know how to read, so it renders the report, on a
seeded sample of at most ``sample_rows`` rows per side: at 10,000 rows it takes ~1.5 s where
the full 1M-row window takes ~29 s (project notes), and its distance verdicts agree.
Evidently is imported here only, on first use (2-3 s and ~280 MB): the CLI and the traffic
functions never pay for it.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlops.core.drift_stats import SMALL_REFERENCE


def sample(
    columns: Mapping[str, np.ndarray], rows: int, seed: int, *, replace: bool = False
) -> dict[str, np.ndarray]:
    """The same random rows of every column: all of them when there are few, unless
    ``replace`` (then exactly ``rows``, drawn with replacement)."""
    total = len(next(iter(columns.values()))) if columns else 0
    if total == rows or (total < rows and not replace) or total == 0:
        return dict(columns)
    keep = np.sort(np.random.default_rng(seed).choice(total, size=rows, replace=total < rows))
    return {name: values[keep] for name, values in columns.items()}


def evidently_html(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    *,
    columns: Sequence[str],
    title: str,
    sample_rows: int,
    share_threshold: float,
    distance_threshold: float,
    seed: int = 0,
) -> str:
    """Evidently's data drift report over both tables' ``columns``, as a standalone page."""
    # Evidently on first use only, as the module docstring says; its loggers quiet first.
    logging.getLogger("evidently").setLevel(logging.WARNING)
    from evidently import DataDefinition, Dataset, Report  # noqa: PLC0415
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    names = list(columns)
    import pandas as pd  # noqa: PLC0415 - with Evidently, on the first report

    ref = pd.DataFrame(sample({n: reference[n] for n in names}, sample_rows, seed))
    cur = pd.DataFrame(sample({n: current[n] for n in names}, sample_rows, seed + 1))
    definition = DataDefinition(numerical_columns=names)
    # Evidently picks p-value tests for a reference of at most 1,000 rows; the configured
    # distance threshold applies to the distance tests only.
    options: dict[str, Any] = {"drift_share": share_threshold}
    if len(ref) > SMALL_REFERENCE:
        options["threshold"] = distance_threshold
    report = Report([DataDriftPreset(columns=names, **options)], metadata={"title": title})
    # A constant column (all zeros after a plan change) makes numpy warn inside Evidently's
    # plots; the statistics are unaffected.
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = report.run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
    return str(snapshot.get_html_str(as_iframe=False))


BANNER_STYLE = (
    "font-family: system-ui, sans-serif; background: #fff8e1; border-bottom: 2px solid #c9a227; "
    "padding: 12px 20px; color: #222; line-height: 1.45"
)


def with_verdict(page: str, *, title: str, facts: Sequence[tuple[str, str]], caveat: str) -> str:
    """Evidently's page with the verdict of record on top: ``title`` as the page's <title> and
    heading, ``facts`` (label, value) and ``caveat`` in a banner at the top of the body. The
    page itself is not re-rendered; all text is escaped."""
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:12px'>{html.escape(label)}</th>"
        f"<td>{html.escape(value)}</td></tr>"
        for label, value in facts
    )
    banner = (
        f"<div id='verdict-of-record' style='{BANNER_STYLE}'>"
        f"<h1 style='font-size:1.3em;margin:0 0 6px'>{html.escape(title)}</h1>"
        f"<table style='font-size:0.95em'>{rows}</table>"
        f"<p style='margin:6px 0 0'><b>Read the report below with this in mind:</b> "
        f"{html.escape(caveat)}</p></div>"
    )
    head = f"<title>{html.escape(title)}</title>"
    # The first </head> and <body> are the page's own (later ones sit inside its scripts).
    if "</head>" in page:
        page = page.replace("</head>", f"{head}</head>", 1)
    else:
        banner = head + banner
    body = re.search(r"<body[^>]*>", page, re.IGNORECASE)
    if body:
        return page[: body.end()] + banner + page[body.end() :]
    start = re.search(r"<html[^>]*>", page, re.IGNORECASE)
    at = start.end() if start else 0
    return page[:at] + banner + page[at:]


def preset_verdicts(snapshot: Any) -> dict[str, bool]:
    """Each column's verdict in a DataDriftPreset run, read from its ValueDrift metric (p-value
    tests drift below their threshold, distances at or above it). For side-by-side checks."""
    verdicts: dict[str, bool] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        column = config.get("column")
        if config.get("type", "").endswith("ValueDrift") and column:
            threshold = config.get("threshold") or 0.1
            method = str(config.get("method", ""))
            value = float(metric["value"])
            p_value = "p_value" in method or method.startswith(("K-S", "chi", "Z-test"))
            verdicts[column] = value < threshold if p_value else value >= threshold
    return verdicts
