"""Capture files read column-wise: a window's table from file bytes, by mlops.core.capture's
rules, at several times the reference reader's speed and on every core.

The reference reader (``capture.parse_file``, then ``variant_check.table_from_records``) builds
Python objects for every record. This one runs Rust regexes and casts (polars) over a whole file
at once; they release the GIL, so files are read in parallel threads (``read_files``).

It vouches for a line only when the line is, character for character, the layout SageMaker
writes (``TEMPLATE``): fixed keys in a fixed order, strings holding no control character and
no escape but ``\\"``. Such a line is strict JSON with exactly those fields, so its values are
the same whichever JSON reader reads it. Every other non-blank line goes to the reference parser
with its line number, and is read, counted and described exactly as there. Payloads likewise:
the fast path takes one CSV row of plain numbers, or ``{"instances": [[...]]}`` of plain JSON
numbers, answered with one ``{"predictions": [{"score": .., "label": ..}]}``, and checks every
value is finite; any other record goes through ``variant_check``'s own record parser.

The result is the reference reader's, record for record and value for value, malformed
accounting included: tests/unit/test_capture_reader.py checks it on generated files.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from mlops.core.capture import (
    EXAMPLES_PER_KIND,
    JSON_WHITESPACE,
    UTF8_BOM,
    CaptureRecord,
    Malformed,
    MalformedRecord,
    UnreadableFile,
    _inference_time,
    file_content,
    parse_file,
    parse_line,
)
from mlops.core.variant_check import CaptureTable, RecordRows, assemble_table, record_rows
from pipeline_steps.schema import FEATURE_NAMES

WIDTH = len(FEATURE_NAMES)

# JSON strings as SageMaker writes them: no control character; in data, no escape but \", \n,
# \r and \t (no \\: so each escape reads alone, and four plain replacements unescape it all).
_TEXT = r'[^"\\\x00-\x1f]*'
_DATA = r'(?:[^"\\\x00-\x1f]|\\["nrt])*'
_ESCAPES = (('\\"', '"'), ("\\n", "\n"), ("\\r", "\r"), ("\\t", "\t"))


def _template(inference_id: str) -> str:
    # One template per place of inferenceId, not one with optional parts: a regex with
    # captures that can tell at every character which way it goes runs several times faster.
    before, after = (f'"inferenceId":"{_TEXT}",', "") if inference_id == "before" else ("", "")
    if inference_id == "after":
        after = f',"inferenceId":"{_TEXT}"'
    return (
        r'^\{"captureData":\{"endpointInput":\{'
        rf'"observedContentType":"(?P<in_type>{_TEXT})","mode":"INPUT",'
        rf'"data":"(?P<in_data>{_DATA})","encoding":"(?P<in_encoding>CSV|JSON|BASE64)"\}},'
        r'"endpointOutput":\{'
        rf'"observedContentType":"(?P<out_type>{_TEXT})","mode":"OUTPUT",'
        rf'"data":"(?P<out_data>{_DATA})","encoding":"(?P<out_encoding>CSV|JSON|BASE64)"\}}\}},'
        rf'"eventMetadata":\{{"eventId":"(?P<event_id>{_TEXT})",{before}'
        rf'"inferenceTime":"(?P<time>{_TEXT})"{after}\}},"eventVersion":"0"\}}\r?$'
    )


TEMPLATES = tuple(_template(place) for place in ("none", "after", "before"))
# Plain numbers only (ASCII digits): a subset of what variant_check's bulk path and the
# handlers' parser read, so a value read here is the value they read (all round correctly).
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
# A JSON number, but not the integer -0: the handlers' json.loads reads it as the int 0 (+0.0).
_FRACTION_EXPONENT = r"(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_JSON_NUMBER = (
    rf"(?:-?[1-9][0-9]*{_FRACTION_EXPONENT}|0{_FRACTION_EXPONENT}"
    r"|-0(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+))"
)
# One row, captured without its line break.
ONE_CSV_ROW = rf"^([ \t]*{_NUMBER}[ \t]*(?:,[ \t]*{_NUMBER}[ \t]*){{{WIDTH - 1}}})\r?\n?$"
ONE_JSON_ROW = (
    rf'^\{{"instances": ?\[\[( ?{_JSON_NUMBER}(?: ?, ?{_JSON_NUMBER}){{{WIDTH - 1}}} ?)\]\]\}}$'
)
_SCORE = r'^\{{"predictions": *\[\{{"score": *({}), *"label": *-?[0-9]+\}}\]\}} *$'
# After a CSV row, the score as variant_check's bulk path reads it; otherwise as the handlers'
# json.loads does, or, for a text/csv response, as float() reads one value.
ONE_SCORE = _SCORE.format(_NUMBER)
ONE_JSON_SCORE = _SCORE.format(_JSON_NUMBER)
ONE_CSV_SCORE = rf"^[ \t\r\n]*({_NUMBER})[ \t\r\n]*$"
CANONICAL_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


@dataclass
class FileRead:
    """One capture file's records within a window, as the reference reader gives them."""

    table: CaptureTable | None = None  # None: unreadable
    problems: Malformed = field(default_factory=Malformed)  # lines that are not capture records
    unreadable: str | None = None  # why the file could not be read at all
    first: datetime | None = None  # the earliest and latest inference times kept
    last: datetime | None = None


def _in_window(when: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or when >= start) and (end is None or when < end)


def _reference(
    body: bytes, source: str, start: datetime | None, end: datetime | None, keep: int
) -> FileRead:
    """The whole file by the reference reader (a file that is not all UTF-8: rare)."""
    parsed = parse_file(body, source=source, keep_errors=keep)
    if parsed.unreadable is not None:
        return FileRead(unreadable=parsed.unreadable)
    kept = [
        (record, line)
        for record, line in zip(parsed.records, parsed.lines, strict=True)
        if _in_window(record.inference_time, start, end)
    ]
    rows = record_rows([r for r, _ in kept], range(len(kept)), source, [n for _, n in kept])
    times = [r.inference_time for r, _ in kept]
    return FileRead(
        table=assemble_table([rows], records=len(kept), keep_errors=keep),
        problems=parsed.problems,
        first=min(times, default=None),
        last=max(times, default=None),
    )


def _times(texts: pl.Series) -> dict[str, datetime | None]:
    """Each distinct time text read once (records of one second share it); None: not RFC 3339."""
    read: dict[str, datetime | None] = {}
    for text in texts.unique().to_list():
        try:
            read[text] = _inference_time(text)
        except MalformedRecord:
            read[text] = None  # the reference parser names it, with the line
    return read


def _base64_decoded(frame: pl.DataFrame, side: str) -> pl.Series:
    """``side``'s text, its BASE64 sections decoded as the reference decodes them (strict
    base64, then UTF-8 with replacement); null where a section is not strict base64."""
    name, base64_rows = f"{side}_text", pl.col(f"{side}_encoding") == "BASE64"
    # Canonical padding only: then Python's decoder and polars' agree; other cases below.
    raw = frame.select(
        pl.when(base64_rows & pl.col(name).str.contains(CANONICAL_BASE64))
        .then(pl.col(name).str.decode("base64", strict=False))
        .alias(name)
    ).to_series()
    try:
        decoded = raw.cast(pl.String)
    except pl.exceptions.ComputeError:  # invalid UTF-8 somewhere: decoded with replacement
        decoded = pl.Series(
            name, [None if b is None else b.decode("utf-8", "replace") for b in raw.to_list()]
        )
    texts = frame[name]
    merged = frame.select(pl.when(base64_rows).then(decoded).otherwise(pl.col(name))).to_series()
    slow = (frame[f"{side}_encoding"] == "BASE64") & decoded.is_null()
    if not slow.any():
        return merged
    texts_out: list[str | None] = merged.to_list()
    for index in np.flatnonzero(slow.to_numpy()).tolist():
        try:
            texts_out[index] = base64.b64decode(texts[index], validate=True).decode(
                "utf-8", errors="replace"
            )
        except (binascii.Error, ValueError):
            texts_out[index] = None  # the reference parser names it
    return pl.Series(name, texts_out, dtype=pl.String)


def _decoded(frame: pl.DataFrame) -> pl.DataFrame:
    """in_text and out_text: each section's data as the reference decodes it; null where a
    BASE64 section is not strict base64 (the reference parser names it)."""
    sides = ("in", "out")
    present = frame.select(
        *(
            pl.col(f"{side}_data").str.contains(escape, literal=True).any().alias(f"{side}{escape}")
            for side in sides
            for escape, _ in _ESCAPES
        ),
        *((pl.col(f"{side}_encoding") == "BASE64").any().alias(side) for side in sides),
    ).row(0, named=True)
    texts: dict[str, pl.Expr] = {}
    for side in sides:
        text = pl.col(f"{side}_data")
        for escape, character in _ESCAPES:  # each replaced only where present
            if present[f"{side}{escape}"]:
                text = text.str.replace_all(escape, character, literal=True)
        texts[f"{side}_text"] = text
    frame = frame.with_columns(**texts)
    for side in (side for side in sides if present[side]):
        frame = frame.with_columns(_base64_decoded(frame, side))
    return frame


def _matched(texts: list[str]) -> tuple[pl.DataFrame, list[tuple[str, int]]]:
    """The lines that match a template, with their fields and numbers; and (line, number) of
    the others."""
    left = pl.DataFrame(
        {"line": pl.Series(texts, dtype=pl.String), "number": np.arange(1, len(texts) + 1)}
    )
    matched: list[pl.DataFrame] = []
    for template in TEMPLATES:
        found = left.with_columns(pl.col("line").str.extract_groups(template).alias("f")).unnest(
            "f"
        )
        if found["in_encoding"].null_count() == 0:
            matched.append(found)
            return _in_line_order(matched), []
        hit = pl.col("in_encoding").is_not_null()
        matched.append(found.filter(hit))
        left = found.filter(~hit).select("line", "number")
    return _in_line_order(matched), list(left.iter_rows())


def _in_line_order(matched: list[pl.DataFrame]) -> pl.DataFrame:
    """The lines each template matched, back in line order (positions follow from it)."""
    return matched[0] if len(matched) == 1 else pl.concat(matched).sort("number")


def read_file(
    body: bytes,
    *,
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
    keep_errors: int = EXAMPLES_PER_KIND,
) -> FileRead:
    """One capture file's records with start <= inference time < end (either end open)."""
    try:
        content = file_content(body, source)
    except UnreadableFile as exc:
        return FileRead(unreadable=str(exc))
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM) :]
    try:
        texts = content.decode("utf-8").split("\n")  # rules 2-3: LF only
    except UnicodeDecodeError:
        return _reference(body, source, start, end, keep_errors)
    if texts[-1] == "":  # after the last LF: blank (numbers stay as they were)
        texts.pop()
    frame, others = _matched(texts)
    frame = _decoded(frame)
    times = _times(frame["time"])
    good = [t for t, w in times.items() if w is not None]
    fast = frame
    if len(good) < len(times) or frame["in_text"].null_count() or frame["out_text"].null_count():
        fast_ok = pl.col("time").is_in(good) & pl.col("in_text").is_not_null()
        fast_ok &= pl.col("out_text").is_not_null()
        fast = frame.filter(fast_ok)
        others += list(frame.filter(~fast_ok).select("line", "number").iter_rows())
    # Every other line not blank goes to the reference parser, in line order, with its number.
    problems = Malformed(keep=keep_errors)
    slow: list[tuple[int, CaptureRecord]] = []
    for line, number in sorted(others, key=lambda item: item[1]):
        if not line.strip(JSON_WHITESPACE):
            continue
        try:
            slow.append((number, parse_line(line)))
        except MalformedRecord as exc:
            problems.add(exc.kind, f"{source}:{number}: {exc}")
    # The window, over both.
    inside = [t for t in good if _in_window(times[t], start, end)]  # type: ignore[arg-type]
    if len(inside) < len(times):
        fast = fast.filter(pl.col("time").is_in(inside))
    slow = [(n, r) for n, r in slow if _in_window(r.inference_time, start, end)]
    # Of the records kept only: a line that took the reference parser may not be a record.
    kept_times = [times[t] for t in fast["time"].unique().to_list()]
    kept_times += [r.inference_time for _, r in slow]
    # Positions: the kept records in line order, whichever path read them.
    fast_numbers = fast["number"].to_numpy().astype(np.int64)
    if slow:
        slow_numbers = np.asarray([n for n, _ in slow], dtype=np.int64)
        kept = np.sort(np.concatenate([fast_numbers, slow_numbers]))
        fast_positions = np.searchsorted(kept, fast_numbers)
        slow_positions = np.searchsorted(kept, slow_numbers)
    else:  # fast_numbers are in line order
        kept, fast_positions = fast_numbers, np.arange(len(fast_numbers), dtype=np.int64)
        slow_positions = np.empty(0, dtype=np.int64)
    bulk, rest = _payloads(fast, fast_positions)
    # Records the fast payload path does not take: variant_check's record parser, as ever.
    records = [(int(position), parse_line(line), number) for position, line, number in rest]
    records += [(int(p), r, n) for p, (n, r) in zip(slow_positions, slow, strict=True)]
    records.sort(key=lambda item: item[0])
    rows = record_rows(
        [r for _, r, _ in records], [p for p, _, _ in records], source, [n for _, _, n in records]
    )
    return FileRead(
        table=assemble_table([bulk, rows], records=len(kept), keep_errors=keep_errors),
        problems=problems,
        first=min((t for t in kept_times if t is not None), default=None),
        last=max((t for t in kept_times if t is not None), default=None),
    )


def _base_type(content_type: str) -> str:
    return content_type.split(";", maxsplit=1)[0].strip().lower()  # as the handlers read it


def _payloads(
    fast: pl.DataFrame, positions: np.ndarray
) -> tuple[RecordRows, list[tuple[int, str, int]]]:
    """Rows of the records whose payloads take the fast path (one row of plain numbers, one
    score), and (position, line, number) of the others, for the record parser.

    The record parser's own order: first its bulk path (a text/csv request with a JSON
    response, both by regex); then the serving handlers' parser, which goes by the base content
    type (CSV by the csv module, JSON by json.loads) and reads a text/csv response as numbers
    split on whitespace and any other as JSON. Content types are judged once per distinct type.
    """
    in_types, out_types = fast.select(
        pl.col(c).unique().implode() for c in ("in_type", "out_type")
    ).row(0)
    in_type, out_type = pl.col("in_type"), pl.col("out_type")
    in_text, out_text = pl.col("in_text"), pl.col("out_text")
    plan = (
        fast.lazy()
        .with_columns(
            csv_row=in_text.str.extract(ONE_CSV_ROW, 1),
            score=out_text.str.extract(ONE_SCORE, 1),
            in_csv=in_type.is_in([t for t in in_types if _base_type(t) == "text/csv"]),
            bulk=in_type.is_in([t for t in in_types if t.startswith("text/csv")])
            & out_type.is_in([t for t in out_types if t.startswith("application/json")]),
        )
        .with_columns(
            bulk=pl.col("bulk") & pl.col("csv_row").is_not_null() & pl.col("score").is_not_null()
        )
        .with_columns(
            row=pl.when(pl.col("bulk") | pl.col("in_csv")).then(pl.col("csv_row")),
            score=pl.when(pl.col("bulk")).then(pl.col("score")),
        )
    )
    frame = plan.collect()
    if frame["bulk"].sum() < len(frame):  # the handlers' parser, for what the bulk path left
        json_in = ~pl.col("bulk") & in_type.is_in(
            [t for t in in_types if _base_type(t) == "application/json"]
        )
        handlers_csv = ~pl.col("bulk") & out_type.is_in(
            [t for t in out_types if _base_type(t) == "text/csv"]
        )
        frame = frame.with_columns(
            row=pl.when(json_in).then(in_text.str.extract(ONE_JSON_ROW, 1)).otherwise("row"),
            score=pl.when(handlers_csv)
            .then(out_text.str.extract(ONE_CSV_SCORE, 1))
            .when(~pl.col("bulk"))
            .then(out_text.str.extract(ONE_JSON_SCORE, 1))
            .otherwise("score"),
        )
    # Spaces and tabs stand only around values (by the regexes); both parsers strip them.
    values = pl.col("row")
    for space in (" ", "\t"):
        if frame.select(values.str.contains(space, literal=True).any()).item():
            values = values.str.replace_all(space, "", literal=True)
    values = values.str.split(",").explode().cast(pl.Float64, strict=False)
    flat = frame.select(values).to_series().to_numpy()
    if frame["row"].null_count() == 0:
        matrix = flat.reshape(len(frame), WIDTH)
    else:  # exploded, a row that matched gives WIDTH values and any other row one null
        has_row = frame["row"].is_not_null().to_numpy()
        matrix = np.full((len(frame), WIDTH), np.nan)
        matrix[has_row] = flat[np.repeat(has_row, np.where(has_row, WIDTH, 1))].reshape(-1, WIDTH)
    scores = frame["score"].cast(pl.Float64, strict=False).to_numpy().astype(float)
    ok = np.isfinite(matrix).all(axis=1) & np.isfinite(scores)
    event_ids = fast["event_id"].to_numpy().astype(object)
    if ok.all():
        return RecordRows([matrix], [scores], [event_ids], [positions.astype(np.int64)]), []
    rows = RecordRows([matrix[ok]], [scores[ok]], [event_ids[ok]], [positions[ok]])
    rest = zip(
        positions[~ok].tolist(),
        fast["line"].filter(pl.Series(~ok)).to_list(),
        fast["number"].to_numpy()[~ok].tolist(),
        strict=True,
    )
    return rows, list(rest)


def read_files(
    files: Iterable[tuple[str, Callable[[], bytes]]],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    keep_errors: int = EXAMPLES_PER_KIND,
    workers: int | None = None,
) -> Iterator[tuple[str, FileRead]]:
    """(name, read) of each file, in the order given; each file's bytes are fetched (``load``)
    and read in one of ``workers`` threads (default: one per core)."""

    def work(item: tuple[str, Callable[[], bytes]]) -> tuple[str, FileRead]:
        name, load = item
        return name, read_file(load(), source=name, start=start, end=end, keep_errors=keep_errors)

    count = workers or len(os.sched_getaffinity(0))
    if count <= 1:
        yield from map(work, files)
        return
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="capture") as pool:
        yield from pool.map(work, files)
