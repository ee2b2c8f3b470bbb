"""Closest-in-time matching against brute-force loops over every pair."""

import numpy as np
import pandas as pd
import pytest

from clerc.evaluate.matching import closest_pairs, match_nearest, study_or_nearest

T0 = pd.Timestamp("2020-01-01")


def _events(rng: np.random.Generator, n: int, n_patients: int, start: int) -> pd.DataFrame:
    """Coarse day grid so that equal gaps and equal times occur; a few NaT times."""
    days = rng.integers(0, 30, size=n)
    time = pd.Series(T0 + pd.to_timedelta(days, unit="D"))
    time[rng.random(n) < 0.05] = pd.NaT
    return pd.DataFrame({"patient_id": rng.integers(0, n_patients, size=n).astype(str),
                         "time": time, "idx": np.arange(start, start + n)})


def _brute_pairs(left: pd.DataFrame, right: pd.DataFrame, max_gap) -> pd.DataFrame:
    out = []
    for pid in sorted(set(left.patient_id) & set(right.patient_id)):
        cands = []
        for lrow in left[left.patient_id == pid].itertuples():
            for rrow in right[right.patient_id == pid].itertuples():
                if pd.isna(lrow.time) or pd.isna(rrow.time):
                    continue
                gap = abs(rrow.time - lrow.time)
                cands.append((gap, lrow.time, rrow.time, lrow.idx, rrow.idx))
        if not cands:
            continue
        gap, _, _, li, ri = min(cands)
        if max_gap is None or gap <= max_gap:
            out.append((pid, li, ri, gap))
    return pd.DataFrame(out, columns=["patient_id", "left_idx", "right_idx", "gap"])


@pytest.mark.parametrize("max_gap", [None, pd.Timedelta(days=0), pd.Timedelta(days=3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closest_pairs_match_brute_force(seed: int, max_gap) -> None:
    rng = np.random.default_rng(seed)
    left, right = _events(rng, 60, 15, 0), _events(rng, 50, 15, 1000)
    got = closest_pairs(left, right, max_gap=max_gap)
    ref = _brute_pairs(left, right, max_gap)
    assert list(got.columns) == ["patient_id", "left_idx", "right_idx", "gap"]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref, check_dtype=False)
    if max_gap is not None:
        assert len(got) < len(_brute_pairs(left, right, None))


def test_closest_pairs_tie_breaks_by_earlier_left_then_right() -> None:
    day = pd.Timedelta(days=1)
    left = pd.DataFrame({"patient_id": ["a", "a"], "time": [T0 + 2 * day, T0 + 4 * day],
                         "idx": [10, 11]})
    right = pd.DataFrame({"patient_id": ["a", "a", "a"],
                          "time": [T0 + 3 * day, T0 + day, T0 + 3 * day], "idx": [7, 8, 9]})
    got = closest_pairs(left, right)
    # gaps of 1 day: (10,8), (10,7), (10,9), (11,7), (11,9): earliest left, then right time
    assert got.loc[0, ["left_idx", "right_idx"]].tolist() == [10, 8]
    assert got.loc[0, "gap"] == day


def test_closest_pairs_without_common_patients_is_empty() -> None:
    left = pd.DataFrame({"patient_id": ["a"], "time": [T0], "idx": [0]})
    right = pd.DataFrame({"patient_id": ["b"], "time": [T0], "idx": [1]})
    got = closest_pairs(left, right)
    assert got.empty and list(got.columns) == ["patient_id", "left_idx", "right_idx", "gap"]


def _brute_nearest(rows: pd.DataFrame, labels: pd.DataFrame, max_gap) -> tuple[list, int]:
    out = []
    for row in rows.itertuples():
        cands = [(abs(lab.time - row.time), lab.time, lab.value)
                 for lab in labels[labels.patient_id == row.patient_id].itertuples()
                 if not pd.isna(row.time) and not pd.isna(lab.time)
                 and abs(lab.time - row.time) <= max_gap]
        if cands:
            gap, _, value = min(cands)
            out.append((row.idx, value, gap))
    return out, len(rows) - len(out)


@pytest.mark.parametrize("gap_days", [0, 2, 40])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_nearest_matches_brute_force(seed: int, gap_days: int) -> None:
    rng = np.random.default_rng(seed)
    rows = _events(rng, 70, 12, 0).assign(extra=lambda f: f.idx * 2)
    labels = _events(rng, 40, 12, 0).drop(columns="idx")
    labels["value"] = rng.normal(size=len(labels)).round(2)
    labels = labels.drop_duplicates(["patient_id", "time"])
    max_gap = pd.Timedelta(days=gap_days)
    matched, n_dropped = match_nearest(rows, labels, max_gap)
    ref, ref_dropped = _brute_nearest(rows, labels, max_gap)
    assert n_dropped == ref_dropped
    assert matched["idx"].tolist() == [r[0] for r in ref]
    assert matched["value"].tolist() == [r[1] for r in ref]
    assert matched["gap"].tolist() == [r[2] for r in ref]
    assert (matched["extra"] == matched["idx"] * 2).all()
    assert list(matched.columns) == ["patient_id", "time", "idx", "extra", "value", "gap"]


def test_match_nearest_prefers_the_earlier_label_on_equal_gaps() -> None:
    day = pd.Timedelta(days=1)
    rows = pd.DataFrame({"patient_id": ["a"], "time": [T0 + 5 * day]})
    labels = pd.DataFrame({"patient_id": ["a", "a"], "time": [T0 + 7 * day, T0 + 3 * day],
                           "value": [1.0, 0.0]})
    matched, dropped = match_nearest(rows, labels, 2 * day)
    assert matched["value"].tolist() == [0.0] and dropped == 0
    matched, dropped = match_nearest(rows, labels, day)
    assert matched.empty and dropped == 1


def test_match_nearest_errors_name_the_problem() -> None:
    rows = pd.DataFrame({"patient_id": ["a"], "time": [T0]})
    clash = pd.DataFrame({"patient_id": ["a", "a"], "time": [T0, T0], "value": [1.0, 0.0]})
    with pytest.raises(ValueError, match="patient 'a'"):
        match_nearest(rows, clash, pd.Timedelta(days=1))
    with pytest.raises(ValueError, match="missing column"):
        match_nearest(rows, clash.drop(columns="value"), pd.Timedelta(days=1))
    with pytest.raises(ValueError, match="max_gap"):
        match_nearest(rows, clash, pd.Timedelta(days=-1))
    same = pd.DataFrame({"patient_id": ["a", "a"], "time": [T0, T0], "value": [1.0, 1.0]})
    matched, dropped = match_nearest(rows, same, pd.Timedelta(0))
    assert matched["value"].tolist() == [1.0] and dropped == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_study_or_nearest_matches_a_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    day = pd.Timedelta(days=1)
    n_rows, n_labels, max_gap = 40, 30, 4 * day
    rows = pd.DataFrame({"patient_id": rng.integers(0, 5, n_rows).astype(str),
                         "study_id": [f"s{i}" for i in rng.integers(0, 60, n_rows)],
                         "time": T0 + pd.to_timedelta(rng.integers(0, 30, n_rows), unit="D")})
    study = [f"s{i}" if rng.random() < 0.5 else None for i in rng.permutation(60)[:n_labels]]
    labels = pd.DataFrame({"patient_id": rng.integers(0, 5, n_labels).astype(str),
                           "study_id": pd.array(study, dtype="string"),
                           "measured_at": T0 + pd.to_timedelta(rng.permutation(30)[:n_labels],
                                                               unit="D"),
                           "value": rng.normal(size=n_labels)})
    got = study_or_nearest(rows, labels, max_gap)
    for i, r in enumerate(rows.itertuples()):
        same = labels[labels.study_id == r.study_id]
        if len(same):
            assert got[i] == same.value.iloc[0]
            continue
        mine = labels[labels.patient_id == r.patient_id]
        gaps = (mine.measured_at - r.time).abs()
        ok = mine[gaps <= max_gap]
        if ok.empty:
            assert np.isnan(got[i])
            continue
        best = ok.assign(gap=gaps[gaps <= max_gap]).sort_values(["gap", "measured_at"]).iloc[0]
        assert got[i] == best.value


def test_study_or_nearest_refuses_two_values_for_one_study() -> None:
    rows = pd.DataFrame({"patient_id": ["a"], "study_id": ["s1"], "time": [T0]})
    labels = pd.DataFrame({"patient_id": ["a", "a"], "study_id": ["s1", "s1"],
                           "measured_at": [T0, T0 + pd.Timedelta(days=1)], "value": [40.0, 60.0]})
    with pytest.raises(ValueError, match="study 's1'.*clerc validate"):
        study_or_nearest(rows, labels, pd.Timedelta(days=1))
    same = labels.assign(value=50.0)
    assert study_or_nearest(rows, same, pd.Timedelta(days=1)).tolist() == [50.0]
