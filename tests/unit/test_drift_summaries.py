"""Mergeable summaries (mlops.core.summaries) and the drift statistics computed from them.

A shard's Counts merged with the others' are exactly the Counts of the whole column, whatever
the split; they survive JSON; the drift statistics from Counts equal those from the raw column
to the bit, and a direct scipy computation on the raw data to 1e-9; the AUC from labelled
score counts equals the rank-based one.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from mlops.core import drift_stats
from mlops.core.drift_stats import column_drift, dataset_drift
from mlops.core.summaries import Counts, LabelledScores
from mlops.core.variant_check import auc

PROPERTY = settings(max_examples=150, deadline=None, database=None)
RNG = np.random.default_rng(20261130)

# Floats with ties (a small pool), both zeros, subnormals, extremes, and missing values.
POOL = [0.0, -0.0, 1.0, -1.5, 2.5, 5e-324, -5e-324, 1e-300, 1.7e308, -1.7e308, 0.1, 1 / 3]
FLOATS = st.one_of(
    st.sampled_from([*POOL, math.nan]),
    st.floats(allow_nan=True, allow_infinity=False, width=64),
)
WORDS = st.one_of(st.sampled_from(["a", "b", "ab", "", "é", "b "]), st.text(max_size=3), st.none())


def split(values: list[Any], cuts: list[int], order: list[int]) -> list[list[Any]]:
    """The list cut at ``cuts`` (at most 5 positions; empty parts too), the parts in the
    order ``order`` (a permutation of range(6)) gives."""
    bounds = [0, *sorted(min(c, len(values)) for c in cuts), len(values)]
    parts = [values[a:b] for a, b in itertools.pairwise(bounds)]
    reordered = [parts[i] for i in order if i < len(parts)]
    assert sorted(map(id, reordered)) == sorted(map(id, parts))
    return reordered


def assert_same(merged: Counts, whole: Counts) -> None:
    assert merged.values.dtype == whole.values.dtype
    assert merged.counts.dtype == whole.counts.dtype == np.int64
    np.testing.assert_array_equal(merged.values, whole.values)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.total == whole.total
    assert merged == whole


# -- Counts: merging ----------------------------------------------------------------------------
@PROPERTY
@given(
    values=st.lists(FLOATS, min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=5),
    order=st.permutations(range(6)),
)
def test_merged_numeric_shards_are_the_whole_columns_counts(
    values: list[float], cuts: list[int], order: list[int]
) -> None:
    parts = split(values, cuts, list(order))
    shards = [Counts.of(np.array(p, dtype=np.float64)) for p in parts]
    whole = Counts.of(np.array(values, dtype=np.float64))
    assert_same(Counts.merged(*shards), whole)
    # Any grouping: merging is associative.
    folded = shards[0]
    for shard in shards[1:]:
        folded = shard.merge(folded)
    assert_same(folded, whole)
    # What a column holds, without its missing values.
    present = [v for v in values if not math.isnan(v)]
    assert whole.total == len(present)
    np.testing.assert_array_equal(np.repeat(whole.values, whole.counts), np.sort(present))
    assert len(whole.values) <= len(values)
    assert not np.signbit(whole.values[whole.values == 0]).any()  # one zero, written 0.0


@PROPERTY
@given(
    values=st.lists(WORDS, min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=5),
    order=st.permutations(range(6)),
)
def test_merged_categorical_shards_are_the_whole_columns_counts(
    values: list[str | None], cuts: list[int], order: list[int]
) -> None:
    def column(part: list[str | None]) -> np.ndarray:
        array = np.empty(len(part), dtype=object)
        array[:] = part
        return array

    shards = [Counts.of(column(p)) for p in split(values, cuts, list(order))]
    whole = Counts.of(column(values))
    assert_same(Counts.merged(*shards), whole)
    present = sorted(v for v in values if v is not None)
    assert list(np.repeat(whole.values, whole.counts)) == present
    if present:
        assert whole.values.dtype == object
    # Fixed-width text (numpy str) counts the same as Python strings (which numpy can hold
    # unless they end with NUL characters).
    if present and not any(v.endswith("\x00") for v in present):
        assert_same(Counts.of(np.array(present)), whole)


def test_counts_are_compact_and_refuse_mixed_merges() -> None:
    column = RNG.integers(0, 7, 100_000).astype(float)
    counts = Counts.of(column)
    assert len(counts.values) == 7
    assert counts.total == 100_000
    text = Counts.of(np.array(["x", "y"]))
    with pytest.raises(ValueError, match="numeric and a categorical"):
        counts.merge(text)
    with pytest.raises(ValueError, match="at least one"):
        Counts.merged()
    with pytest.raises(ValueError, match="sorted and distinct"):
        Counts(np.array([2.0, 1.0]), np.array([1, 1]), 2)
    with pytest.raises(ValueError, match="above 0"):
        Counts(np.array([1.0, 2.0]), np.array([1, 0]), 1)
    with pytest.raises(ValueError, match="total"):
        Counts(np.array([1.0]), np.array([3]), 2)


# -- Counts: missing and infinite values ----------------------------------------------------------
def test_nan_and_none_are_dropped() -> None:
    numbers = Counts.of(np.array([1.0, np.nan, 2.0, 1.0, np.nan]))
    assert (numbers.values.tolist(), numbers.counts.tolist()) == ([1.0, 2.0], [2, 1])
    objects = Counts.of(np.array([1.0, None, 2, float("nan"), 1], dtype=object))
    assert objects.values.dtype == np.float64  # numbers in an object array are numbers
    assert (objects.values.tolist(), objects.counts.tolist()) == ([1.0, 2.0], [2, 1])
    text = Counts.of(np.array(["b", None, "a", float("nan"), "b"], dtype=object))
    assert (text.values.tolist(), text.counts.tolist()) == (["a", "b"], [1, 2])
    assert Counts.of(np.array([np.nan, np.nan])).total == 0


@pytest.mark.parametrize(
    "column",
    [
        np.array([1.0, np.inf, 2.0]),
        np.array([-np.inf, 1.0, np.nan]),
        np.array([1.0, None, np.inf], dtype=object),
        np.array(["a", -np.inf, "b"], dtype=object),
    ],
    ids=["float", "negative", "objects", "mixed"],
)
def test_infinities_are_refused_naming_column_and_side(column: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"column 'x': 1 infinite value\(s\) in the current data"):
        Counts.of(column, name="x")
    with pytest.raises(ValueError, match=r"'y': 1 infinite value\(s\) in the reference data"):
        Counts.of(column, name="y", side="reference")


# -- Counts: JSON -------------------------------------------------------------------------------
@PROPERTY
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=40))
def test_numeric_counts_survive_json_exactly(values: list[float]) -> None:
    counts = Counts.of(np.array(values, dtype=np.float64))
    back = Counts.from_json(counts.to_json())
    assert_same(back, counts)
    assert back.values.tobytes() == counts.values.tobytes()  # every bit of every float


@PROPERTY
@given(st.lists(st.text(max_size=5), max_size=40))
def test_categorical_counts_survive_json(values: list[str]) -> None:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    counts = Counts.of(column)
    back = Counts.from_json(counts.to_json().encode())
    assert_same(back, counts)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"format": "other"}, "not a mlops.counts/1"),
        ({"format": "mlops.counts/1", "numeric": True}, "lacks values, counts, total"),
        (
            {
                "format": "mlops.counts/1",
                "numeric": True,
                "values": [2, 1],
                "counts": [1, 1],
                "total": 2,
            },
            "sorted and distinct",
        ),
        (
            {
                "format": "mlops.counts/1",
                "numeric": True,
                "values": [1],
                "counts": [1.5],
                "total": 1,
            },
            "counts must be a list of integers",
        ),
        (
            {
                "format": "mlops.counts/1",
                "numeric": False,
                "values": [1],
                "counts": [1],
                "total": 1,
            },
            "must be strings",
        ),
        (
            {"format": "mlops.counts/1", "numeric": True, "values": [1], "counts": [2], "total": 3},
            "not the sum",
        ),
    ],
)
def test_malformed_json_is_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Counts.from_json(json.dumps(document))


# -- the drift statistics from Counts -------------------------------------------------------------
def data(case: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(reference, current, kind, the test Evidently picks) for each case."""
    rng = np.random.default_rng(CASES.index(case))
    letters = np.array(list("abcde"), dtype=object)
    cases = {
        # with ties, and values both sides hold
        "wasserstein": lambda: (
            np.round(rng.normal(0, 1, 5000), 2), np.round(rng.normal(0.2, 1.1, 40_000), 2),
            "numeric", "wasserstein",
        ),
        "continuous": lambda: (
            rng.normal(0, 1, 3000), rng.normal(0.05, 1, 20_000), "numeric", "wasserstein",
        ),
        "jensenshannon": lambda: (
            letters[rng.integers(0, 4, 3000)], letters[rng.integers(0, 5, 20_000)],
            "categorical", "jensenshannon",
        ),
        "jensenshannon numeric": lambda: (
            rng.integers(0, 4, 3000).astype(float), rng.integers(1, 5, 9000).astype(float),
            "numeric", "jensenshannon",
        ),
        "ks": lambda: (
            rng.normal(0, 1, 700), np.round(rng.normal(0.1, 1, 9000), 1), "numeric", "ks",
        ),
        "chisquare": lambda: (
            rng.choice(["a", "b", "c", "d"], 800, p=[0.3, 0.3, 0.2, 0.2]),
            rng.choice(["a", "b", "c", "d"], 5000, p=[0.3, 0.3, 0.3, 0.1]),
            "categorical", "chisquare",
        ),
        "z": lambda: (
            rng.binomial(1, 0.4, 900).astype(float), rng.binomial(1, 0.45, 5000),
            "numeric", "z",
        ),
    }  # fmt: skip
    return cases[case]()  # type: ignore[no-untyped-call]


CASES = ["wasserstein", "continuous", "jensenshannon", "jensenshannon numeric", "ks", "chisquare", "z"]  # fmt: skip


def shards(column: np.ndarray, parts: int, seed: int) -> list[Counts]:
    cuts = np.sort(np.random.default_rng(seed).integers(0, len(column), parts - 1))
    return [Counts.of(piece) for piece in np.split(column, cuts)]


@pytest.mark.parametrize("case", CASES)
def test_raw_counts_and_merged_shards_give_the_same_result(case: str) -> None:
    reference, current, kind, test = data(case)
    raw = column_drift("x", reference, current, kind=kind)  # type: ignore[arg-type]
    assert raw.test == test
    summarized = column_drift("x", reference, Counts.of(current), kind=kind)  # type: ignore[arg-type]
    shuffled = RNG.permutation(current)
    merged = Counts.merged(*shards(shuffled, 7, seed=len(case)))
    from_shards = column_drift("x", reference, merged, kind=kind)  # type: ignore[arg-type]
    assert raw == summarized == from_shards  # every field, the score to the bit
    assert raw.current_rows == len(current)


def direct(reference: np.ndarray, current: np.ndarray, test: str) -> float:
    """The test computed straight from the raw columns with scipy (no Counts)."""
    if test == "wasserstein":
        return float(stats.wasserstein_distance(reference, current) / max(np.std(reference), 1e-3))
    if test == "ks":
        return float(stats.ks_2samp(reference, current).pvalue)
    keys = np.unique(np.concatenate([reference, current]))
    ref = np.array([np.sum(reference == k) for k in keys], dtype=float)
    cur = np.array([np.sum(current == k) for k in keys], dtype=float)
    if test == "jensenshannon":
        return float(distance.jensenshannon(ref / len(reference), cur / len(current)))
    if test == "chisquare":
        return float(stats.chisquare(cur, ref * len(current) / len(reference)).pvalue)
    p1, p2 = 1 - ref[0] / len(reference), 1 - cur[0] / len(current)
    pooled = (p1 * len(reference) + p2 * len(current)) / (len(reference) + len(current))
    se = math.sqrt(pooled * (1 - pooled) * (1 / len(reference) + 1 / len(current)))
    return float(2 * (1 - stats.norm.cdf(abs((p1 - p2) / se))))


@pytest.mark.parametrize("case", CASES)
def test_each_statistic_equals_scipy_on_the_raw_data(case: str) -> None:
    reference, current, kind, test = data(case)
    ours = column_drift("x", reference, Counts.of(current), kind=kind)  # type: ignore[arg-type]
    assert ours.test == test
    assert ours.score == pytest.approx(direct(reference, current, test), rel=1e-9, abs=1e-12)


@PROPERTY
@given(
    reference=st.lists(st.sampled_from([*POOL[:7], 3.0, 4.0, 7.25]), min_size=1, max_size=50),
    current=st.lists(st.floats(-1e6, 1e6) | st.sampled_from(POOL[:7]), min_size=1, max_size=50),
)
def test_wasserstein_from_counts_is_scipys(reference: list[float], current: list[float]) -> None:
    ref, cur = np.array(reference), np.array(current)
    both = drift_stats._union(Counts.of(ref), Counts.of(cur))
    ours = drift_stats._wasserstein(both, len(ref), len(cur))
    assert ours == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9, abs=1e-300)
    # the union holds every distinct value, and the counts of each side
    assert list(both.values) == sorted({*reference, *current})
    assert both.reference[-1] == len(ref)
    assert both.current[-1] == len(cur)


@PROPERTY
@given(
    values=st.lists(st.floats(-1e300, 1e300) | st.sampled_from(POOL[:7]), min_size=1, max_size=80),
)
def test_sturges_edges_are_numpys(values: list[float]) -> None:
    array = np.array(values)
    try:
        expected = np.histogram_bin_edges(array, bins="sturges")
    except ValueError as error:  # one value of a magnitude where +-0.5 changes nothing
        with pytest.raises(ValueError, match=str(error)):
            drift_stats._sturges_edges(array.min(), array.max(), len(array))
        return
    edges = drift_stats._sturges_edges(array.min(), array.max(), len(array))
    assert edges.dtype == expected.dtype
    np.testing.assert_array_equal(edges, expected)


def test_sturges_binned_jensenshannon_equals_numpys_histograms() -> None:
    # Reached for a numeric column with more than 20 reference values (Evidently's
    # get_binned_data), which the test choice itself never sends to Jensen-Shannon.
    reference, current = (
        np.round(RNG.normal(0, 1, 3000), 1),
        np.round(RNG.normal(0.3, 1, 20_000), 2),
    )
    ref, cur = Counts.of(reference), Counts.of(current)
    assert len(ref.values) > 20
    assert ref.counts.max() > 1
    ours = drift_stats._jensenshannon(drift_stats._union(ref, cur), ref, cur, "numeric")
    bins = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    expected = distance.jensenshannon(
        np.histogram(reference, bins)[0] / len(reference),
        np.histogram(current, bins)[0] / len(current),
    )
    assert ours == expected


def test_dataset_drift_takes_counts_and_threads_change_nothing() -> None:
    reference = {f"n{i}": RNG.normal(0, 1, 2000) for i in range(3)}
    reference["c"] = RNG.choice(np.array(["u", "v", "w"], dtype=object), 2000)
    current = {f"n{i}": RNG.normal(0.4 * i, 1, 30_000) for i in range(3)}
    current["c"] = RNG.choice(np.array(["u", "v", "w", None], dtype=object), 30_000)
    kinds = {"c": "categorical"}
    raw = dataset_drift(reference, current, kinds=kinds, threads=1)  # type: ignore[arg-type]
    summaries = {
        name: Counts.merged(*shards(column, 4, seed=1)) for name, column in current.items()
    }
    threaded = dataset_drift(reference, summaries, kinds=kinds, threads=4)  # type: ignore[arg-type]
    assert raw == threaded
    assert [c.drifted for c in raw.columns] == [False, True, True, False]


def test_a_current_column_of_another_type_than_the_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="reference holds numbers and the current data text"):
        column_drift("x", RNG.normal(size=2000), Counts.of(np.array(["a", "b"])))
    with pytest.raises(ValueError, match=r"no values to compare \(reference 2000, current 0\)"):
        column_drift("x", RNG.normal(size=2000), Counts.of(np.array([np.nan])))
    with pytest.raises(ValueError, match=r"'x': 1 infinite value\(s\) in the current data"):
        column_drift("x", RNG.normal(size=2000), np.array([1.0, np.inf], dtype=object))


# -- LabelledScores ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_auc_from_counts_is_the_rank_auc(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 2000)
    scores = np.round(rng.uniform(size=2000) * 0.6 + labels * 0.3, 1 + seed % 3)  # many ties
    ours = LabelledScores.of(scores, labels)
    assert len(ours.scores) < len(np.unique(scores)) + 1
    assert ours.auc() == pytest.approx(auc(labels, scores), abs=1e-12)
    assert ours.rows == 2000
    cuts = np.sort(rng.integers(0, 2000, 5))
    parts = [
        LabelledScores.of(s, y)
        for s, y in zip(np.split(scores, cuts), np.split(labels, cuts), strict=True)
    ]
    merged = LabelledScores.merged(*parts[::-1])
    assert merged == ours
    assert merged.auc() == ours.auc()
    assert LabelledScores.from_json(merged.to_json()) == ours


@PROPERTY
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.25, 0.5, 1.0, -0.0]) | st.floats(-10, 10), st.integers(0, 1)
        ),
        min_size=2,
        max_size=40,
    )
)
def test_auc_from_counts_is_the_rank_auc_on_any_data(pairs: list[tuple[float, int]]) -> None:
    scores = np.array([s for s, _ in pairs])
    labels = np.array([y for _, y in pairs])
    ours = LabelledScores.of(scores, labels)
    if labels.min() == labels.max():
        with pytest.raises(ValueError, match="AUC needs labels of both classes"):
            ours.auc()
        return
    assert ours.auc() == pytest.approx(auc(labels, scores), abs=1e-12)


def test_labelled_scores_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="AUC needs labels of both classes"):
        LabelledScores.of([0.1, 0.2], [1, 1]).auc()
    with pytest.raises(ValueError, match="0 or 1"):
        LabelledScores.of([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        LabelledScores.of([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="2 scores but 1 labels"):
        LabelledScores.of([0.1, 0.2], [1])
    assert LabelledScores.of([0.3, 0.3, 0.7], [0, 1, 1]).auc() == 0.75
