"""Drift statistics: the same tests and verdicts as Evidently's defaults, cross-checked
against Evidently's own stattests and scipy, on synthetic data with known drift and none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from mlops.core.drift_stats import column_drift, dataset_drift, jensenshannon

RNG = np.random.default_rng(20261126)


def evidently_column(
    reference: pd.Series, current: pd.Series, kind: str
) -> tuple[str, float, bool]:
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest  # noqa: PLC0415
    from evidently.legacy.core import ColumnType  # noqa: PLC0415

    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    test = _get_default_stattest(reference, current, column_type)
    score, drifted = test.func(reference, current, column_type, test.default_threshold)
    return test.name, float(score), bool(drifted)


CASES = {
    # name: (reference, current, kind, drift injected)
    "large numeric, no drift": (RNG.normal(0, 1, 5000), RNG.normal(0, 1, 3000), "numeric", False),
    "large numeric, shifted": (RNG.normal(0, 1, 5000), RNG.normal(0.5, 1, 3000), "numeric", True),
    "large binary, no drift": (RNG.binomial(1, 0.3, 5000).astype(float), RNG.binomial(1, 0.3, 3000).astype(float), "numeric", False),
    "large binary, drifted": (RNG.binomial(1, 0.3, 5000).astype(float), RNG.binomial(1, 0.7, 3000).astype(float), "numeric", True),
    "large categorical, drifted": (RNG.choice(list("abc"), 5000, p=[0.6, 0.3, 0.1]), RNG.choice(list("abc"), 3000, p=[0.2, 0.3, 0.5]), "categorical", True),
    "large numeric, few values": (RNG.integers(0, 4, 5000).astype(float), RNG.integers(0, 4, 3000).astype(float), "numeric", False),
    "small numeric, no drift": (RNG.normal(0, 1, 800), RNG.normal(0, 1, 800), "numeric", False),
    "small numeric, shifted": (RNG.normal(0, 1, 800), RNG.normal(0.6, 1, 800), "numeric", True),
    "small categorical, drifted": (RNG.choice(list("abc"), 800, p=[0.6, 0.3, 0.1]), RNG.choice(list("abc"), 800, p=[0.2, 0.3, 0.5]), "categorical", True),
    "small binary, no drift": (RNG.binomial(1, 0.5, 800).astype(float), RNG.binomial(1, 0.5, 800).astype(float), "numeric", False),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_test_score_and_verdict_as_evidently(case: str) -> None:
    reference, current, kind, injected = CASES[case]
    ours = column_drift("x", reference, current, kind=kind)  # type: ignore[arg-type]
    name, score, drifted = evidently_column(pd.Series(reference), pd.Series(current), kind)
    expected_name = {
        "wasserstein": "wasserstein",
        "jensenshannon": "jensenshannon",
        "ks": "ks",
        "chisquare": "chisquare",
        "z": "z",
    }
    assert name == expected_name[ours.test]
    assert ours.score == pytest.approx(score, rel=1e-9, abs=1e-12)
    assert ours.drifted is drifted
    assert ours.drifted is injected  # and the verdict is right about the data


def test_p_values_agree_with_scipy() -> None:
    reference, current = RNG.normal(0, 1, 500), RNG.normal(0.3, 1, 500)
    ours = column_drift("x", reference, current)
    assert ours.test == "ks"
    assert ours.score == pytest.approx(stats.ks_2samp(reference, current).pvalue)
    counts_ref, counts_cur = np.array([300, 150, 50]), np.array([100, 150, 250])
    ref = np.repeat(["a", "b", "c"], counts_ref)
    cur = np.repeat(["a", "b", "c"], counts_cur)
    chi = column_drift("c", ref, cur, kind="categorical")
    assert chi.test == "chisquare"
    assert chi.score == pytest.approx(
        stats.chisquare(counts_cur, counts_ref * len(cur) / len(ref)).pvalue
    )


def test_dataset_drift_share() -> None:
    reference = {f"f{i}": RNG.normal(0, 1, 4000) for i in range(4)}
    current = {f"f{i}": RNG.normal(0.8 if i < 2 else 0.0, 1, 2000) for i in range(4)}
    result = dataset_drift(reference, current)
    assert [c.drifted for c in result.columns] == [True, True, False, False]
    assert (result.drifted_columns, result.drift_share, result.dataset_drift) == (2, 0.5, True)
    calm = dataset_drift(reference, {k: RNG.normal(0, 1, 2000) for k in reference})
    assert (calm.drifted_columns, calm.dataset_drift) == (0, False)


def test_missing_values_are_dropped_and_empty_columns_refused() -> None:
    reference = RNG.normal(0, 1, 3000)
    with_nan = np.concatenate([RNG.normal(0, 1, 2000), [np.nan] * 50])
    assert column_drift("x", reference, with_nan).current_rows == 2000
    with pytest.raises(
        ValueError, match=r"column 'x': no values to compare \(reference 3000, current 0\)"
    ):
        column_drift("x", reference, np.array([np.nan, np.nan]))
    with pytest.raises(ValueError, match="current data lacks column"):
        dataset_drift({"a": reference, "b": reference}, {"a": reference})


SHARES = st.lists(st.integers(0, 10**6).map(float) | st.floats(0, 1e300), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, database=None)
@given(
    pair=SHARES.flatmap(
        lambda p: st.tuples(
            st.just(p), st.lists(SHARES.map(lambda q: q[0]), min_size=len(p), max_size=len(p))
        )
    )
)
def test_jensen_shannon_is_scipys_to_the_bit(pair: tuple[list[float], list[float]]) -> None:
    """drift_stats computes it itself (scipy.spatial takes 0.4 s to import): the same floats,
    NaN where scipy gives NaN (an all-zero side)."""
    p, q = (np.asarray(side, dtype=float) for side in pair)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = float(distance.jensenshannon(p, q))
        got = jensenshannon(p, q)
    assert np.asarray(got).view(np.int64) == np.asarray(want).view(np.int64), (got, want)
