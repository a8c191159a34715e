"""A capture window's mergeable summary: everything a variant's verdict needs, from any split of
the window's capture files into shards.

Pure (numpy; no AWS). A drift check too large for one function is spread over several machines
(a SageMaker Processing job, one shard of the capture files each): each shard summarizes its
files, and one step merges the summaries and judges them (``variant_check.check_summary``). The
merge is exact: however the files are split and in whatever order the shards are merged, the
merged summary is the one a single pass over every file gives, and so is the report, score for
score and example for example (tests/unit/test_window_summary.py). In-process, a window is
summarized as one shard, so both paths run the same code from here on.

What a summary holds, and how it merges:

- per feature and for the scores, ``Counts`` (exact: Evidently's Wasserstein verdict needs the
  exact empirical distribution, which histograms on fixed bins only approximate): summed;
- ``LabelledRows``: the scores of the rows whose event has ground-truth labels, per event and
  file, with those labels. The join is quality_check's: an event's labels go to its rows in
  table order (file order, then row order), so an event that appears in two files (copied
  capture) gets them once, in order, as in one pass;
- rows, records, readable files, the first and last inference time: summed, min, max;
- malformed records by kind, each example with its place in the window (layer: capture line
  or payload; the file's position in the window's list; its position in the file): the merged
  examples of a kind are the first ``keep`` by place, and kinds are listed in the order first
  seen, exactly as one pass keeps them; unreadable files likewise, in file order;
- a sample of rows for the HTML report: the ``size`` rows with the smallest hash of (file
  name, row index in the file): a bottom-k sample, the same rows whichever shard read them.

Files are identified by their position in the window's list (``SourceFile.order``: the listing
order, which a Processing job's manifest keeps) and their name (how examples name them): a
merge refuses two summaries of the same file.
"""

from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from mlops.core.capture import EXAMPLES_PER_KIND, Malformed
from mlops.core.summaries import Counts, LabelledScores
from pipeline_steps.schema import FEATURE_NAMES

SUMMARY_FORMAT = "mlops.window-summary/1"
LINES, PAYLOADS = 0, 1  # malformed capture lines come before malformed payloads, as in one pass
WIDTH = len(FEATURE_NAMES)

# A malformed record's place: (layer, the file's order, its position among the file's own).
Place = tuple[int, int, int]


class Table(Protocol):
    """What is read of a capture table (mlops.core.variant_check.CaptureTable)."""

    features: dict[str, np.ndarray]
    scores: np.ndarray
    event_ids: np.ndarray
    rows: int
    records: int
    problems: Malformed


class Read(Protocol):
    """What is read of one file's read (mlops.core.capture_reader.FileRead)."""

    @property
    def table(self) -> Table | None: ...  # None: unreadable
    @property
    def problems(self) -> Malformed: ...
    @property
    def unreadable(self) -> str | None: ...
    @property
    def first(self) -> datetime | None: ...
    @property
    def last(self) -> datetime | None: ...


@dataclass(frozen=True)
class SourceFile:
    order: int  # the file's position in the window's list of capture files
    name: str  # how the examples name it (its key, path or URI)


# -- malformed records ------------------------------------------------------------------------
@dataclass
class Problems:
    """Malformed records by kind: counts, where each kind was first seen, and the first
    ``keep`` examples of each kind with their places."""

    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, Place] = field(default_factory=dict)
    examples: dict[str, list[tuple[Place, str]]] = field(default_factory=dict)
    keep: int = EXAMPLES_PER_KIND

    @classmethod
    def of(cls, malformed: Malformed, layer: int, order: int, keep: int) -> Problems:
        """One file's ``malformed`` (kinds in first-seen order, examples in file order)."""
        return cls(
            counts=dict(malformed.by_kind),
            first={kind: (layer, order, rank) for rank, kind in enumerate(malformed.by_kind)},
            examples={
                kind: [((layer, order, i), text) for i, text in enumerate(kept[:keep])]
                for kind, kept in malformed.examples.items()
                if kept
            },
            keep=keep,
        )

    @classmethod
    def merged(cls, parts: Iterable[Problems]) -> Problems:
        parts = list(parts)
        keep = min((p.keep for p in parts), default=EXAMPLES_PER_KIND)
        whole = cls(keep=keep)
        for part in parts:
            for kind, count in part.counts.items():
                whole.counts[kind] = whole.counts.get(kind, 0) + count
                place = part.first[kind]
                whole.first[kind] = min(whole.first.get(kind, place), place)
            for kind, examples in part.examples.items():
                whole.examples.setdefault(kind, []).extend(examples)
        for kind, examples in whole.examples.items():
            whole.examples[kind] = heapq.nsmallest(keep, examples)
        return whole

    def malformed(self) -> Malformed:
        """As one pass keeps them: kinds in the order first seen, the first examples of each."""
        kinds = sorted(self.counts, key=lambda kind: self.first[kind])
        return Malformed(
            by_kind={kind: self.counts[kind] for kind in kinds},
            examples={
                kind: [text for _, text in self.examples[kind]]
                for kind in kinds
                if kind in self.examples
            },
            keep=self.keep,
        )

    def as_document(self) -> dict[str, Any]:
        return {
            "keep": self.keep,
            "kinds": [
                {
                    "kind": kind,
                    "count": count,
                    "first": list(self.first[kind]),
                    "examples": [
                        [list(place), text] for place, text in self.examples.get(kind, [])
                    ],
                }
                for kind, count in sorted(self.counts.items(), key=lambda k: self.first[k[0]])
            ],
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Problems:
        problems = cls(keep=int(document["keep"]))
        for entry in document["kinds"]:
            kind = str(entry["kind"])
            problems.counts[kind] = int(entry["count"])
            problems.first[kind] = _place(entry["first"])
            if entry["examples"]:
                problems.examples[kind] = [
                    (_place(place), str(text)) for place, text in entry["examples"]
                ]
        return problems


def _place(value: Any) -> Place:
    layer, order, index = (int(v) for v in value)
    return layer, order, index


# -- labelled rows ----------------------------------------------------------------------------
@dataclass
class LabelledRows:
    """Rows whose event has ground-truth labels: per event, the scores of its rows in each file
    (file order, scores in row order) and the labels given for it. ``enabled``: labels were
    given for the window at all (quality is judged then, even with no row labelled)."""

    enabled: bool = False
    given: dict[str, list[float]] = field(default_factory=dict)
    rows: dict[str, list[tuple[int, list[float]]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, tables: Sequence[tuple[int, Table]], labels: Mapping[str, Sequence[float]]
    ) -> LabelledRows:
        labelled = cls(enabled=bool(labels))
        if not labels:
            return labelled
        for order, table in tables:
            found: dict[str, list[float]] = {}
            for event, score in zip(table.event_ids.tolist(), table.scores.tolist(), strict=True):
                if event in labels:
                    found.setdefault(event, []).append(score)
            for event, scores in found.items():
                labelled.given[event] = [float(v) for v in labels[event]]
                labelled.rows.setdefault(event, []).append((order, scores))
        return labelled

    @classmethod
    def merged(cls, parts: Iterable[LabelledRows]) -> LabelledRows:
        whole = cls()
        for part in parts:
            whole.enabled = whole.enabled or part.enabled
            whole.given.update(part.given)
            for event, entries in part.rows.items():
                whole.rows.setdefault(event, []).extend(entries)
        return whole

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """The labelled rows' scores and labels, as quality_check joins them: an event's labels
        go to its rows in order, and rows beyond its labels are not labelled."""
        scores: list[float] = []
        labels: list[float] = []
        for event in sorted(self.rows):
            given = self.given[event]
            ordered = [s for _, part in sorted(self.rows[event], key=lambda e: e[0]) for s in part]
            kept = min(len(given), len(ordered))
            scores += ordered[:kept]
            labels += given[:kept]
        return np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)

    def labelled_scores(self) -> LabelledScores:
        scores, labels = self.scores()
        return LabelledScores.of(scores, labels)

    def as_document(self) -> dict[str, Any]:
        # Canonical: events sorted, each event's files in order (equal summaries, equal text).
        return {
            "enabled": self.enabled,
            "given": {e: self.given[e] for e in sorted(self.given)},
            "rows": {
                e: [[o, s] for o, s in sorted(self.rows[e], key=lambda entry: entry[0])]
                for e in sorted(self.rows)
            },
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> LabelledRows:
        return cls(
            enabled=bool(document["enabled"]),
            given={str(e): [float(v) for v in given] for e, given in document["given"].items()},
            rows={
                str(e): [(int(o), [float(s) for s in scores]) for o, scores in entries]
                for e, entries in document["rows"].items()
            },
        )


# -- the report's sample ----------------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def row_hashes(name: str, rows: int) -> np.ndarray:
    """A 64-bit hash of each (file name, row index) (splitmix64 of the name's hash and the
    index): where a row falls in the sample depends on nothing else."""
    seed = np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big"))
    x = np.arange(rows, dtype=np.uint64) ^ seed
    x += _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _bottom(hashes: np.ndarray, files: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``size`` rows smallest by (hash, file, row), in window order."""
    if size <= 0:
        return np.empty(0, np.intp)
    if len(hashes) > size:
        cut = np.partition(hashes, size - 1)[size - 1]
        near = np.flatnonzero(hashes <= cut)  # ties at the cut: all of them, then sorted
        keep = near[np.lexsort((rows[near], files[near], hashes[near]))[:size]]
    else:
        keep = np.arange(len(hashes))
    return keep[np.lexsort((rows[keep], files[keep]))]


@dataclass
class RowSample:
    """At most ``size`` rows: those with the smallest (hash, file order, row) of the window.
    Kept in window order (file order, then row)."""

    size: int
    hashes: np.ndarray  # uint64
    files: np.ndarray  # int64: each row's file order
    rows: np.ndarray  # int64: its index in its file's table
    features: np.ndarray  # (n, WIDTH) float64, in FEATURE_NAMES order
    scores: np.ndarray  # float64

    @classmethod
    def empty(cls, size: int) -> RowSample:
        return cls(
            size,
            np.empty(0, np.uint64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty((0, WIDTH)),
            np.empty(0),
        )

    def _kept(self) -> RowSample:
        """The ``size`` smallest by (hash, file, row), in window order."""
        keep = _bottom(self.hashes, self.files, self.rows, self.size)
        return RowSample(
            self.size,
            self.hashes[keep],
            self.files[keep],
            self.rows[keep],
            self.features[keep],
            self.scores[keep],
        )

    @classmethod
    def merged(cls, parts: Sequence[RowSample]) -> RowSample:
        if not parts:
            raise ValueError("RowSample.merged needs at least one part")
        return cls(
            min(p.size for p in parts),
            np.concatenate([p.hashes for p in parts]),
            np.concatenate([p.files for p in parts]),
            np.concatenate([p.rows for p in parts]),
            np.concatenate([p.features for p in parts]).reshape(-1, WIDTH),
            np.concatenate([p.scores for p in parts]),
        )._kept()

    def columns(self) -> dict[str, np.ndarray]:
        """The sampled features by name."""
        return {name: self.features[:, i].copy() for i, name in enumerate(FEATURE_NAMES)}

    def as_document(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "hashes": [int(h) for h in self.hashes.tolist()],
            "files": self.files.tolist(),
            "rows": self.rows.tolist(),
            "features": self.features.tolist(),
            "scores": self.scores.tolist(),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RowSample:
        return cls(
            int(document["size"]),
            np.asarray(document["hashes"], dtype=np.uint64).reshape(-1),
            np.asarray(document["files"], dtype=np.int64).reshape(-1),
            np.asarray(document["rows"], dtype=np.int64).reshape(-1),
            np.asarray(document["features"], dtype=np.float64).reshape(-1, WIDTH),
            np.asarray(document["scores"], dtype=np.float64).reshape(-1),
        )


# -- the summary ------------------------------------------------------------------------------
@dataclass
class WindowSummary:
    """Everything a variant's verdict needs from a window (or a shard of it)."""

    features: dict[str, Counts]
    scores: Counts
    labelled: LabelledRows
    rows: int
    records: int
    problems: Problems
    sample: RowSample
    files: int = 0  # capture files read
    sources: tuple[int, ...] = ()  # the orders of the files summarized (read or not)
    malformed_files: list[tuple[int, str]] = field(default_factory=list)  # (order, "name: why")
    first: datetime | None = None  # the earliest and latest inference times kept
    last: datetime | None = None

    @property
    def malformed(self) -> Malformed:
        return self.problems.malformed()

    @property
    def unreadable(self) -> list[str]:
        """The files that could not be read, "name: reason", in the window's order."""
        return [text for _, text in sorted(self.malformed_files)]

    def merge(self, other: WindowSummary) -> WindowSummary:
        return merged([self, other])

    # JSON ---------------------------------------------------------------------------------
    def as_document(self) -> dict[str, Any]:
        return {
            "format": SUMMARY_FORMAT,
            "rows": self.rows,
            "records": self.records,
            "files": self.files,
            "sources": list(self.sources),
            "first": _when(self.first),
            "last": _when(self.last),
            "features": {name: c.as_document() for name, c in self.features.items()},
            "scores": self.scores.as_document(),
            "labelled": self.labelled.as_document(),
            "problems": self.problems.as_document(),
            "malformed_files": [[o, text] for o, text in self.malformed_files],
            "sample": self.sample.as_document(),
        }

    @classmethod
    def from_document(cls, document: Any) -> WindowSummary:
        if not isinstance(document, dict) or document.get("format") != SUMMARY_FORMAT:
            raise ValueError(f"not a {SUMMARY_FORMAT} document")
        try:
            return cls(
                features={str(n): Counts.from_document(c) for n, c in document["features"].items()},
                scores=Counts.from_document(document["scores"]),
                labelled=LabelledRows.from_document(document["labelled"]),
                rows=int(document["rows"]),
                records=int(document["records"]),
                problems=Problems.from_document(document["problems"]),
                sample=RowSample.from_document(document["sample"]),
                files=int(document["files"]),
                sources=tuple(int(o) for o in document["sources"]),
                malformed_files=[(int(o), str(t)) for o, t in document["malformed_files"]],
                first=_read_when(document["first"]),
                last=_read_when(document["last"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{SUMMARY_FORMAT} document: {type(exc).__name__}: {exc}") from None


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _read_when(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _counts(columns: Mapping[str, np.ndarray]) -> dict[str, Counts]:
    """Each column's Counts, on one thread per core (numpy's sorts release the GIL)."""
    names = list(columns)
    workers = min(_cpus(), len(names))

    def one(name: str) -> Counts:
        return Counts.of(columns[name], name=name)

    if workers <= 1:
        return {name: one(name) for name in names}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def summarize(
    files: Sequence[tuple[SourceFile, Read]],
    *,
    labels: Mapping[str, Sequence[float]] | None = None,
    sample_rows: int,
    keep_errors: int = EXAMPLES_PER_KIND,
) -> WindowSummary:
    """The summary of the files of one shard (or of a whole window), each as it was read.

    ``labels``: ground truth by event id (the window's); ``sample_rows``: the report's sample
    size; ``keep_errors``: examples kept of each kind of malformed record."""
    tables: list[tuple[SourceFile, Table]] = []
    problems: list[Problems] = []
    malformed_files: list[tuple[int, str]] = []
    first: datetime | None = None
    last: datetime | None = None
    for source, read in files:
        table = read.table
        if table is None:
            malformed_files.append((source.order, f"{source.name}: {read.unreadable}"))
            continue
        tables.append((source, table))
        problems.append(Problems.of(read.problems, LINES, source.order, keep_errors))
        problems.append(Problems.of(table.problems, PAYLOADS, source.order, keep_errors))
        if read.first is not None and read.last is not None:
            first = read.first if first is None else min(first, read.first)
            last = read.last if last is None else max(last, read.last)
    summary = _summarize_tables(tables, labels or {}, sample_rows, keep_errors, problems)
    summary.sources = tuple(sorted(source.order for source, _ in files))
    summary.malformed_files = malformed_files
    summary.first, summary.last = first, last
    return summary


def summarize_table(
    table: Table,
    *,
    labels: Mapping[str, Sequence[float]] | None = None,
    sample_rows: int,
    keep_errors: int = EXAMPLES_PER_KIND,
    source: SourceFile = SourceFile(0, ""),
) -> WindowSummary:
    """The summary of one table, as if it were one file's (its problems are payload problems)."""
    problems = [Problems.of(table.problems, PAYLOADS, source.order, keep_errors)]
    summary = _summarize_tables([(source, table)], labels or {}, sample_rows, keep_errors, problems)
    summary.sources = (source.order,)
    return summary


def _summarize_tables(
    tables: Sequence[tuple[SourceFile, Table]],
    labels: Mapping[str, Sequence[float]],
    sample_rows: int,
    keep_errors: int,
    problems: list[Problems],
) -> WindowSummary:
    parts = [t for _, t in tables]
    columns = {
        name: np.concatenate([t.features[name] for t in parts] or [np.empty(0)])
        for name in FEATURE_NAMES
    }
    scores = np.concatenate([t.scores for t in parts] or [np.empty(0)])
    counted = _counts({**columns, "\0scores": scores})
    # The sample: every row's hash; the values of the rows with the smallest ones.
    sizes = [len(t.scores) for t in parts]
    hashes = np.concatenate(
        [row_hashes(s.name, n) for (s, _), n in zip(tables, sizes, strict=True)]
        or [np.empty(0, np.uint64)]
    )
    files = np.concatenate(
        [np.full(n, s.order, np.int64) for (s, _), n in zip(tables, sizes, strict=True)]
        or [np.empty(0, np.int64)]
    )
    rows = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes] or [np.empty(0, np.int64)])
    kept = _bottom(hashes, files, rows, sample_rows)
    sample = RowSample(
        sample_rows,
        hashes[kept],
        files[kept],
        rows[kept],
        np.column_stack([columns[name][kept] for name in FEATURE_NAMES]).reshape(-1, WIDTH),
        scores[kept],
    )
    return WindowSummary(
        features={name: counted[name] for name in FEATURE_NAMES},
        scores=counted["\0scores"],
        labelled=LabelledRows.of([(s.order, t) for s, t in tables], labels),
        rows=sum(t.rows for t in parts),
        records=sum(t.records for t in parts),
        problems=Problems.merged(problems) if problems else Problems(keep=keep_errors),
        sample=sample,
        files=len(parts),
    )


def merged(parts: Sequence[WindowSummary]) -> WindowSummary:
    """The summary of the shards' files together: the same as summarizing them in one pass.
    ValueError if two parts summarized the same file."""
    if not parts:
        raise ValueError("merged needs at least one summary")
    seen: set[int] = set()
    for part in parts:
        twice = seen & set(part.sources)
        if twice:
            raise ValueError(f"file(s) {sorted(twice)[:5]} summarized in two shards")
        seen |= set(part.sources)
    firsts = [p.first for p in parts if p.first is not None]
    lasts = [p.last for p in parts if p.last is not None]
    return WindowSummary(
        features={
            name: Counts.merged(*(p.features[name] for p in parts)) for name in FEATURE_NAMES
        },
        scores=Counts.merged(*(p.scores for p in parts)),
        labelled=LabelledRows.merged(p.labelled for p in parts),
        rows=sum(p.rows for p in parts),
        records=sum(p.records for p in parts),
        problems=Problems.merged(p.problems for p in parts),
        sample=RowSample.merged([p.sample for p in parts]),
        files=sum(p.files for p in parts),
        sources=tuple(sorted(seen)),
        malformed_files=sorted(m for p in parts for m in p.malformed_files),
        first=min(firsts, default=None),
        last=max(lasts, default=None),
    )
