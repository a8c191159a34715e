"""What a command shows, for a person or for a script, and its progress while it works.

`Report`: a command puts its result in one `Report`. For a person, its tables and lines go to
stdout as they come. With `--json`, stdout gets exactly one JSON document at the end, built
from the same values the tables show (full values: ids and ARNs are never cut), and the human
lines go to stderr, so that `mlops registry list --json | jq` reads only the document.

`progress`: a bar (a spinner when the total is unknown) on stderr, with the count and the
elapsed time, that a use case reports into through a plain callback (the use cases do not
import rich). Off a terminal, rich draws nothing while it runs and prints the final line once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlops.cli.common import LazyModule, console, errors

if TYPE_CHECKING:
    import rich.progress as rich_progress
else:
    rich_progress = LazyModule("rich.progress")

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="print the result as one JSON document on stdout (everything else on stderr)",
    ),
]


def jsonable(value: Any) -> Any:
    """``value`` as JSON types: dataclasses and pydantic models as objects, times in ISO 8601,
    paths as text, enums as their values, non-finite numbers as null (JSON has none)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return jsonable(_converted(value))


def _converted(value: Any) -> Any:
    """``value`` one step nearer JSON's types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):  # a pydantic model
        return value.model_dump()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date | PurePath):
        return value.isoformat() if isinstance(value, datetime | date) else str(value)
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    raise TypeError(f"{type(value).__name__} has no JSON form: {value!r}")


def print_json(document: Any) -> None:
    """One JSON document on stdout, as plain text: no colour, no wrapping, whatever the width."""
    typer.echo(json.dumps(jsonable(document), indent=2, allow_nan=False))


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


@dataclasses.dataclass(frozen=True)
class Column:
    """A table column over one key of each row; ``cell`` is how the table shows the value
    (it may shorten it or colour it), the JSON document keeps the value itself. ``of_row``,
    if given, shows the cell from the whole row instead (a value beside another)."""

    key: str
    heading: str
    cell: Callable[[Any], str] = _text
    of_row: Callable[[dict[str, Any]], str] | None = None

    def show(self, row: dict[str, Any]) -> str:
        return self.of_row(row) if self.of_row else self.cell(row.get(self.key))


class Report:
    """One command's result. See the module's docstring."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.data: dict[str, Any] = {}
        # Human text: stdout for a person; stderr with --json (stdout holds only the document).
        self.console = errors if as_json else console

    def add(self, **values: Any) -> None:
        self.data.update(values)

    def line(self, text: str) -> None:
        self.console.print(text)

    def table(
        self,
        key: str,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[Column],
        *,
        title: str | None = None,
    ) -> None:
        """``rows`` under ``key`` in the document; for a person, a table of ``columns``."""
        self.data[key] = list(rows)
        if self.as_json:
            return
        table = Table(title=title)
        for column in columns:
            table.add_column(column.heading)
        for row in rows:
            table.add_row(*(column.show(row) for column in columns))
        console.print(table)

    def emit(self) -> None:
        """With --json: the document, once (call it before any exit, an error's too)."""
        if self.as_json:
            print_json(self.data)


Advance = Callable[[int], None]  # what a use case calls: n more units done


@contextlib.contextmanager
def progress(description: str, total: int | None = None, unit: str = "") -> Iterator[Advance]:
    """A progress bar on stderr with the count of ``unit`` and the elapsed time; yields the
    callback to report into. ``total`` unknown: a spinner and the count; no ``unit`` either:
    a spinner and the elapsed time (for a step that reports nothing until it ends)."""
    count = "{task.completed}/{task.total}" if total is not None else "{task.completed}"
    columns = [
        rich_progress.SpinnerColumn(),
        rich_progress.TextColumn("{task.description}"),
        *([rich_progress.BarColumn()] if total is not None else []),
        *([rich_progress.TextColumn(f"{count} {unit}".strip())] if total or unit else []),
        rich_progress.TimeElapsedColumn(),
    ]
    # Printing to stdout while the bar is drawn: rich moves the text above the bar, but only
    # when stdout is that terminal too (piped, stdout stays stdout).
    with rich_progress.Progress(
        *columns, console=errors, redirect_stdout=sys.stdout.isatty()
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(done: int = 1) -> None:
            bar.advance(task, done)

        yield advance
