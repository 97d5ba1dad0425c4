"""Seeded random malformed (and well-formed) input to the MRV metric: every call either returns the value
a plain-Python reference gives, or raises ValueError; never another error, never a silently wrong value."""

from __future__ import annotations

import math
import random
from pathlib import Path

import evaluate
import numpy as np
import pytest
from eval_reference import reference_mrv

import evaluate_mrv

METRIC_DIR = Path(evaluate_mrv.__file__).resolve().parent
CASES = 300
VALID, INVALID = True, False


def _good_ranks(rng: random.Random) -> list[list[float]]:
    n, k = rng.randint(1, 5), rng.randint(2, 5)
    if rng.random() < 0.5:
        return [[rng.randint(0, 40) for _ in range(k)] for _ in range(n)]
    return [[rng.uniform(0, 40) for _ in range(k)] for _ in range(n)]


def _spoil_one_value(ranks: list[list[float]], rng: random.Random) -> list[list[object]]:
    """A copy with one value replaced by something that is not a finite rank >= 0."""
    spoiled = [list(row) for row in ranks]
    i, lang = rng.randrange(len(spoiled)), rng.randrange(len(spoiled[0]))
    spoiled[i][lang] = rng.choice(
        [-1, -0.5, float("nan"), float("inf"), -float("inf"), True, False, np.bool_(True), "3", "x", b"1", None,
         1 + 2j, [1], {"rank": 1}]
    )
    return spoiled


def _bad_ranks(rng: random.Random) -> object:
    good = _good_ranks(rng)
    choice = rng.randrange(11)
    if choice == 0:
        return _spoil_one_value(good, rng)
    if choice == 1:  # ragged
        return [*good, [0] * (len(good[0]) + rng.choice([-1, 1]))]
    if choice == 2:  # K = 1
        return [[row[0]] for row in good]
    if choice == 3:  # empty
        return rng.choice([[], [[]], [[], []], np.zeros((0, 3))])
    if choice == 4:  # one instance given flat, or three dimensions
        return rng.choice([good[0], [good], np.asarray(good)[None]])
    if choice == 5:
        return np.asarray(good) > 5  # a bool array
    if choice == 6:
        return np.asarray(good).astype(str)  # numeric strings numpy would parse
    if choice == 7:
        return np.asarray(good).astype(complex)
    if choice == 8:
        return rng.choice([None, "0 2 0 6", b"ranks", 3, 2.5, {"ranks": good}, {0, 1}])
    if choice == 9:
        return [tuple(map(str, row)) for row in good]
    return [[bool(value % 2) for value in row] for row in good]


def _as_container(ranks: list[list[float]], rng: random.Random) -> object:
    """Well-formed ranks as a list, a tuple of tuples, or an int / float numpy array."""
    form = rng.randrange(4)
    if form == 0:
        return ranks
    if form == 1:
        return tuple(tuple(row) for row in ranks)
    return np.asarray(ranks, dtype=np.float32 if form == 2 else np.float64)


def _options(k: int, rng: random.Random) -> tuple[dict, bool, bool]:
    """(metric keyword arguments, whether they are well-formed, whether ``kind`` alone is)."""
    names = rng.sample(["en", "de", "fr", "ja", "zh", "es", "it"], k)
    good = {
        "kind": rng.choice(["std", "variance"]),
        "per_language": rng.choice([True, False, np.bool_(True)]),
        "languages": rng.choice([None, names, tuple(names)]),
    }
    if rng.random() < 0.5:
        return good, VALID, VALID
    field = rng.choice(["kind", "per_language", "languages"])
    bad_values = {
        "kind": ["var", "STD", "", None, 0, ["std"], np.array(["std"])],
        "per_language": ["yes", "", 0, 1, None, [True]],
        "languages": [
            [names[0]] * k, names[:-1], [*names, "xx"], "".join(names)[:k], [*names[:-1], 7], [*names[:-1], ""],
            {name: 0 for name in names}, 3,
        ],
    }
    return {**good, field: rng.choice(bad_values[field])}, INVALID, field != "kind"


def generate_cases(seed: int = 20240613, count: int = CASES) -> list[tuple[object, dict, bool, bool]]:
    """(ranks, keyword arguments, metric call valid, ``mean_rank_variance(ranks, kind)`` valid) tuples."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        if rng.random() < 0.45:
            ranks = _bad_ranks(rng)
            options, _, _ = _options(2, rng)
            cases.append((ranks, {**options, "languages": None}, INVALID, INVALID))
            continue
        good = _good_ranks(rng)
        options, valid, kind_valid = _options(len(good[0]), rng)
        cases.append((_as_container(good, rng), options, valid, kind_valid))
    return cases


def expected_result(ranks: object, options: dict) -> dict:
    """The metric's output computed another way: plain-Python loops over the rows."""
    array = np.asarray(ranks, dtype=np.float64)
    result = {"mrv": reference_mrv(array, variance=options["kind"] == "variance")}
    if options["per_language"]:
        means = [sum(column) / len(column) for column in zip(*array.tolist(), strict=True)]
        languages = options["languages"]
        result["mean_rank_per_language"] = dict(zip(languages, means, strict=True)) if languages else means
    return result


def _outcome(function, *args, **kwargs) -> object:
    """The function's result, or the ValueError it raised (any other error propagates)."""
    try:
        return function(*args, **kwargs)
    except ValueError as error:
        return error


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def test_the_generator_covers_both_outcomes():
    cases = generate_cases()
    valid = sum(case[2] for case in cases)
    assert 60 < valid < CASES - 60, valid


@pytest.mark.parametrize("start", range(0, CASES, 50))
def test_metric_compute_returns_the_reference_or_raises_value_error(metric, start):
    for ranks, options, valid, _ in generate_cases()[start : start + 50]:
        outcome = _outcome(metric.compute, ranks=ranks, **options)
        if not valid:
            assert isinstance(outcome, ValueError), (ranks, options, outcome)
            continue
        assert not isinstance(outcome, ValueError), (ranks, options, outcome)
        expected = expected_result(ranks, options)
        assert outcome.keys() == expected.keys()
        assert outcome["mrv"] == pytest.approx(expected["mrv"], rel=1e-6, abs=1e-6)
        if "mean_rank_per_language" in expected:
            assert outcome["mean_rank_per_language"] == pytest.approx(expected["mean_rank_per_language"], rel=1e-6)


def test_plain_function_returns_the_reference_or_raises_value_error():
    for ranks, options, _, kind_valid in generate_cases():
        outcome = _outcome(evaluate_mrv.mean_rank_variance, ranks, kind=options["kind"])
        if not kind_valid:
            assert isinstance(outcome, ValueError), (ranks, options, outcome)
            continue
        expected = reference_mrv(np.asarray(ranks, dtype=np.float64), variance=options["kind"] == "variance")
        assert isinstance(outcome, float) and math.isclose(outcome, expected, rel_tol=1e-9, abs_tol=1e-9)


def test_duplicate_language_names_are_refused(metric):
    with pytest.raises(ValueError, match=r"languages lists \['en'\] more than once"):
        metric.compute(ranks=[[0, 2], [1, 1]], per_language=True, languages=["en", "en"])


@pytest.mark.parametrize(
    ("ranks", "message"),
    [
        ([[True, 2], [1, 1]], r"instance 0, language 0 is True \(bool\)"),
        ([["1", 2], [1, 1]], r"instance 0, language 0 is '1' \(str\)"),
        (np.array([[1, 2]]) > 1, "dtype bool"),
    ],
)
def test_values_numpy_would_convert_are_refused(metric, ranks, message):
    with pytest.raises(ValueError, match=message):
        evaluate_mrv.mean_rank_variance(ranks)
    with pytest.raises(ValueError, match=message):
        metric.compute(ranks=ranks)
