"""The payloads of capture records the column-wise reader (mlops.core.capture_reader) takes:
one row of plain numbers and one score, recognized over whole columns with the same outcome as
variant_check's record parser, whose order it follows (its bulk path first, then the serving
handlers' parser by base content type). Records of any other shape are left to that parser.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline_steps.schema import FEATURE_NAMES

WIDTH = len(FEATURE_NAMES)

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


def _base_type(content_type: str) -> str:
    return content_type.split(";", maxsplit=1)[0].strip().lower()  # as the handlers read it


# Each regex below only says whether a text has the shape (a DFA, no captures: several times
# faster than capturing); the value is then cut out by where the shape puts it.
def _csv_row(text: pl.Expr) -> pl.Expr:
    """ONE_CSV_ROW's row: the text without its line break; null if the text is not one row."""
    return pl.when(text.str.contains(ONE_CSV_ROW)).then(text.str.strip_chars_end("\r\n"))


def _json_row(text: pl.Expr) -> pl.Expr:
    """ONE_JSON_ROW's row: what stands inside [[ ]]; null if the text is not one row."""
    inner = text.str.strip_prefix('{"instances":').str.strip_chars_start(" ")
    return pl.when(text.str.contains(ONE_JSON_ROW)).then(
        inner.str.strip_prefix("[[").str.strip_suffix("]]}")
    )


def _score(text: pl.Expr, pattern: str) -> pl.Expr:
    """The score of a ``pattern`` (ONE_SCORE, ONE_JSON_SCORE) response: after "score": and its
    spaces, up to the first comma (the shape has none before it)."""
    start = text.str.find('"score":', literal=True) + len('"score":')
    stop = text.str.find(",", literal=True)
    return pl.when(text.str.contains(pattern)).then(
        text.str.slice(start, stop - start).str.strip_chars(" ")
    )


def payloads(fast: pl.DataFrame) -> pl.DataFrame:
    """Each record's "values" (its row's text) and "score", where its payloads take the fast
    path (one row of plain numbers, one score); null where they do not: those records are for
    the record parser.

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
            csv_row=_csv_row(in_text),
            score=_score(out_text, ONE_SCORE),
            in_csv=in_type.is_in([t for t in in_types if _base_type(t) == "text/csv"]),
            bulk=in_type.is_in([t for t in in_types if t.startswith("text/csv")])
            & out_type.is_in([t for t in out_types if t.startswith("application/json")]),
        )
        .with_columns(
            bulk=pl.col("bulk") & pl.col("csv_row").is_not_null() & pl.col("score").is_not_null()
        )
        .with_columns(
            values=pl.when(pl.col("bulk") | pl.col("in_csv")).then(pl.col("csv_row")),
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
        csv_score = out_text.str.strip_chars(" \t\r\n")
        frame = frame.with_columns(
            values=pl.when(json_in).then(_json_row(in_text)).otherwise("values"),
            score=pl.when(handlers_csv)
            .then(pl.when(out_text.str.contains(ONE_CSV_SCORE)).then(csv_score))
            .when(~pl.col("bulk"))
            .then(_score(out_text, ONE_JSON_SCORE))
            .otherwise("score"),
        )
    return frame


def numbers(fast: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each record's row and score from its "values" and "score" texts (null: not taken), and
    whether both are finite numbers: the others are for the record parser."""
    # Spaces and tabs stand only around values (by the regexes); both parsers strip them.
    values = pl.col("values")
    for space in (" ", "\t"):
        if fast.select(values.str.contains(space, literal=True).any()).item():
            values = values.str.replace_all(space, "", literal=True)
    values = values.str.split(",").explode().cast(pl.Float64, strict=False)
    flat = fast.select(values).to_series().to_numpy()
    if fast["values"].null_count() == 0:
        matrix = flat.reshape(len(fast), WIDTH)
    else:  # exploded, a row that matched gives WIDTH values and any other row one null
        has_row = fast["values"].is_not_null().to_numpy()
        matrix = np.full((len(fast), WIDTH), np.nan)
        matrix[has_row] = flat[np.repeat(has_row, np.where(has_row, WIDTH, 1))].reshape(-1, WIDTH)
    scores = fast["score"].cast(pl.Float64, strict=False).to_numpy().astype(float)
    return matrix, scores, np.isfinite(matrix).all(axis=1) & np.isfinite(scores)
