"""Capture parsing rate per payload encoding: the column-wise reader against the reference.

Writes --records captured requests per encoding (1,000 per file, as SageMaker writes them, one
row each), then reads them, alternating, --repeats times each, in this process:

  reference  capture.parse_file + variant_check.table_from_records, file by file (one core);
  columns    capture_reader.read_files: the same table, one thread per core (--workers).

Encodings: CSV (a text/csv request captured as CSV), JSON (an application/json request,
{"instances": [[...]]}, captured as JSON), BASE64 (the same CSV request, captured as BASE64:
the endpoint's CaptureContentTypeHeader lists no type). Both readers read the files from disk
(page cache: the files are read once before timing). Prints records/s (median, min-max), the
ratio, and whether both gave the same table (values bit for bit, event ids, malformed counts).
First, what the machine's cores give together: a Python loop in --workers processes at once
against one alone, the ceiling of what the reader's threads can gain over one.
Then fetching: the CSV files read again by the column-wise reader with each fetch first waiting
--get-ms, as an S3 GET waits on the network, with its FETCHERS fetches in flight against one
per reading thread. With --json-readers, parsing alone per CPU-second: the reader's proof of
the layout against well-kept JSON readers (orjson, msgspec, polars, pyarrow; DuckDB and
simdjson where installed).

    .venv/bin/python benchmarks/capture_parse.py --records 200000 --repeats 5 --json-readers
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import io
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec  # in the lock through Evidently (litestar); pyarrow through MLflow
import numpy as np
import orjson
import polars as pl
import pyarrow.json

from mlops.core import capture_reader
from mlops.core.capture import parse_file
from mlops.core.capture_reader import read_files
from mlops.core.variant_check import CaptureTable, concat_tables, table_from_records
from mlops.local.replay import CAPTURE_ENCODINGS, requests, write_capture_files
from pipeline_steps.schema import FEATURE_NAMES

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
PER_FILE = 1000
ENCODINGS = CAPTURE_ENCODINGS


def write(folder: Path, records: int, encoding: str) -> list[Path]:
    values = requests(records, seed=2)[list(FEATURE_NAMES)].to_numpy(float)
    scores = [0.3 + 0.4 * (n % 7) / 7 for n in range(records)]
    return write_capture_files(
        folder / encoding,
        values,
        scores,
        endpoint="bench",
        variant="challenger",
        first=NOW,
        per_file=PER_FILE,
        encoding=encoding,
        labels=[0] * records,
    )


def reference(paths: list[Path], workers: int) -> CaptureTable:
    del workers  # one core: the reference reads file after file
    tables = []
    for path in paths:
        parsed = parse_file(path.read_bytes(), source=str(path))
        tables.append(table_from_records(parsed.records, source=str(path), lines=parsed.lines))
    return concat_tables(tables)


def columns(paths: list[Path], workers: int) -> CaptureTable:
    reads = read_files(((str(p), p.read_bytes) for p in paths), workers=workers)
    return concat_tables([r.table for _, r in reads if r.table is not None])


def same(a: CaptureTable, b: CaptureTable) -> bool:
    def bits(x: np.ndarray) -> bytes:
        return np.ascontiguousarray(x, dtype=np.float64).tobytes()

    return (
        (a.rows, a.records, a.malformed_by_kind) == (b.rows, b.records, b.malformed_by_kind)
        and all(bits(a.features[n]) == bits(b.features[n]) for n in FEATURE_NAMES)
        and bits(a.scores) == bits(b.scores)
        and a.event_ids.tolist() == b.event_ids.tolist()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--get-ms", type=float, default=30.0, help="an S3 GET's wait (fetching)")
    parser.add_argument("--json-readers", action="store_true", help="well-kept JSON readers too")
    args = parser.parse_args()
    readers: dict[str, Callable[[list[Path], int], CaptureTable]] = {
        "reference": reference,
        "columns": columns,
    }
    print(f"{args.records:,} records per encoding, {PER_FILE:,} per file; columns on "
          f"{args.workers} thread(s), {os.cpu_count()} core(s)")  # fmt: skip
    if args.workers > 1:
        gains = machine(args.workers, args.repeats)
        print(f"this machine: {args.workers} processes at once do {statistics.median(gains):.2f}x "
              f"the work of one (min {min(gains):.2f}, max {max(gains):.2f}; a Python loop)")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        for encoding in ENCODINGS:
            paths = write(Path(scratch), args.records, encoding)
            size = sum(p.stat().st_size for p in paths) / 1e6
            rates: dict[str, list[float]] = {name: [] for name in readers}
            tables: dict[str, CaptureTable] = {}
            for _ in range(args.repeats):
                for name, read in readers.items():  # alternate: both see the same load
                    started = time.perf_counter()
                    tables[name] = read(paths, args.workers)
                    rates[name].append(args.records / (time.perf_counter() - started))
            print(f"{encoding} ({size:,.0f} MB):")
            for name, values in rates.items():
                print(f"  {name:9s} median {statistics.median(values):>9,.0f} records/s "
                      f"(min {min(values):,.0f}, max {max(values):,.0f})")  # fmt: skip
            ratio = statistics.median(rates["columns"]) / statistics.median(rates["reference"])
            print(
                f"  ratio {ratio:.1f}x; same table: {same(tables['reference'], tables['columns'])}"
            )
        if args.get_ms:
            fetching(write(Path(scratch), args.records, "CSV"), args)
        if args.json_readers:
            json_readers(write(Path(scratch), args.records, "CSV"), args.repeats)


def _spin(loops: int) -> float:
    started = time.perf_counter()
    total = 0
    for number in range(loops):
        total += number
    return time.perf_counter() - started


def machine(workers: int, repeats: int, loops: int = 20_000_000) -> list[float]:
    """What the cores give together: a Python loop's rate in ``workers`` processes at once over
    its rate alone (2.0 on two cores of their own; less where they share a clock, a cache or a
    host). No reader's gain from its threads can pass it."""
    gains = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_spin, [1000] * workers)  # started before timing
        for _ in range(repeats):
            alone = _spin(loops)
            together = pool.map(_spin, [loops] * workers)
            gains.append(workers * alone / max(together))
    return gains


def json_readers(paths: list[Path], repeats: int) -> None:
    """Parsing alone, records per CPU-second (all threads counted), in batches of the reader's
    size: the column-wise reader's proof of the layout and its fields (no payloads, no numbers)
    against well-kept JSON readers that only parse (no check of the layout at all)."""
    per_batch = max(1, capture_reader.BATCH_BYTES // paths[0].stat().st_size)
    batches = [[p.read_bytes() for p in paths[i : i + per_batch]]
               for i in range(0, len(paths), per_batch)]  # fmt: skip
    joined = [b"".join(batch) for batch in batches]
    decoder = msgspec.json.Decoder()
    parsers: dict[str, Callable[[], object]] = {
        "the layout and its fields (columns)": lambda: [
            capture_reader._matched(capture_reader._lines(b)[0]) for b in batches
        ],
        "orjson.loads, line by line (reference)": lambda: [
            [orjson.loads(line) for line in j.splitlines()] for j in joined
        ],
        "msgspec decode_lines": lambda: [decoder.decode_lines(j) for j in joined],
        "polars read_ndjson": lambda: [pl.read_ndjson(io.BytesIO(j)) for j in joined],
        "pyarrow.json read_json": lambda: [
            pyarrow.json.read_json(io.BytesIO(j), pyarrow.json.ReadOptions(block_size=len(j) + 1))
            for j in joined
        ],
    }
    parsers.update(_not_in_the_lock(joined, paths[0].parent / "joined"))
    rates: dict[str, list[float]] = {name: [] for name in parsers}
    for _ in range(repeats):
        for name, parse in parsers.items():
            started = time.process_time()
            parse()
            rates[name].append(len(paths) * PER_FILE / (time.process_time() - started))
    print(f"CSV, parsing alone, records per CPU-second ({per_batch} files a batch):")
    for name, values in rates.items():
        print(f"  {name:40s} median {statistics.median(values):>9,.0f} "
              f"(min {min(values):,.0f}, max {max(values):,.0f})")  # fmt: skip


def _not_in_the_lock(joined: list[bytes], folder: Path) -> dict[str, Callable[[], object]]:
    """DuckDB's read_json (typed columns, no inference) and simdjson's parser, where installed
    (``uv pip install duckdb pysimdjson``): JSON readers the issue names that we do not ship."""
    parsers: dict[str, Callable[[], object]] = {}
    if importlib.util.find_spec("duckdb"):
        duckdb = importlib.import_module("duckdb")
        side = "STRUCT(observedContentType VARCHAR, mode VARCHAR, data VARCHAR, encoding VARCHAR)"
        columns = {
            "captureData": f"STRUCT(endpointInput {side}, endpointOutput {side})",
            "eventMetadata": "STRUCT(eventId VARCHAR, inferenceTime VARCHAR)",
            "eventVersion": "VARCHAR",
        }
        folder.mkdir(exist_ok=True)
        files = []
        for index, body in enumerate(joined):
            files.append(folder / f"{index}.jsonl")
            files[-1].write_bytes(body)
        connection = duckdb.connect()
        parsers["duckdb read_json"] = lambda: [
            connection.read_json(
                str(f), format="newline_delimited", columns=columns
            ).to_arrow_table()
            for f in files
        ]
    if importlib.util.find_spec("simdjson"):
        parser = importlib.import_module("simdjson").Parser()

        def each_line() -> None:
            for body in joined:
                for line in body.splitlines():
                    parser.parse(line)  # its document dropped at once: the parser is reused

        def with_fields() -> None:  # what the table needs, reached from Python under the GIL
            fields = []
            for body in joined:
                for line in body.splitlines():
                    document = parser.parse(line)
                    capture, metadata = document["captureData"], document["eventMetadata"]
                    a, b = capture["endpointInput"], capture["endpointOutput"]
                    fields.append((a["observedContentType"], a["data"], a["encoding"],
                                   b["observedContentType"], b["data"], b["encoding"],
                                   metadata["eventId"], metadata["inferenceTime"]))  # fmt: skip
                    del document, capture, metadata, a, b  # the parser is reused next line

        parsers["simdjson, line by line"] = each_line
        parsers["simdjson, and the 8 fields read"] = with_fields
    return parsers


def fetching(paths: list[Path], args: argparse.Namespace) -> None:
    """The CSV files again, each fetch first waiting --get-ms as an S3 GET waits on the network:
    the reader's FETCHERS fetches in flight against one per reading thread."""

    def get(path: Path) -> bytes:
        time.sleep(args.get_ms / 1000)
        return path.read_bytes()

    many = capture_reader.FETCHERS
    rates: dict[int, list[float]] = {many: [], args.workers: []}
    for _ in range(args.repeats):
        for fetchers, values in rates.items():
            capture_reader.FETCHERS = fetchers
            started = time.perf_counter()
            files = ((str(p), functools.partial(get, p)) for p in paths)
            list(read_files(files, workers=args.workers))
            values.append(args.records / (time.perf_counter() - started))
    capture_reader.FETCHERS = many
    print(f"CSV, each GET waiting {args.get_ms:g} ms (columns):")
    for fetchers, values in rates.items():
        print(f"  {fetchers:2d} fetches in flight: median {statistics.median(values):>9,.0f} "
              f"records/s (min {min(values):,.0f}, max {max(values):,.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
