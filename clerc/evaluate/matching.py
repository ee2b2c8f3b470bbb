"""Closest-in-time pairing of samples and labels, per patient, vectorised with merge_asof.

Rows whose time is missing (NaT) can never be matched: `closest_pairs` ignores them and
`match_nearest` counts them as dropped. Gaps are absolute `pd.Timedelta`s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["closest_pairs", "match_nearest", "study_or_nearest"]

_PAIR_COLUMNS = ["patient_id", "left_idx", "right_idx", "gap"]


def _require(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")


def _times(frame: pd.DataFrame, name: str) -> pd.Series:
    try:
        times = pd.to_datetime(frame["time"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}.time cannot be read as datetimes: {err}") from err
    return times.astype("datetime64[ns]")


def _check_gap(max_gap: pd.Timedelta | None) -> None:
    if max_gap is not None and (pd.isna(max_gap) or pd.Timedelta(max_gap) < pd.Timedelta(0)):
        raise ValueError(f"max_gap must be a non-negative Timedelta, got {max_gap!r}")


def _nearest_right(left: pd.DataFrame, right: pd.DataFrame, direction: str) -> pd.DataFrame:
    """For each left row, the right time before/after it (first idx among equal times)."""
    found = pd.merge_asof(
        left, right, on="time", by="patient_id", direction=direction, allow_exact_matches=True
    )
    return found.dropna(subset=["right_time"])


def closest_pairs(
    left: pd.DataFrame, right: pd.DataFrame, max_gap: pd.Timedelta | None = None
) -> pd.DataFrame:
    """One (left, right) pair per patient: the pair with the smallest |time difference|.

    `left` and `right` have columns patient_id, time, idx. Ties in the gap go to the
    earlier left time, then the earlier right time, then the smaller left idx, then the
    smaller right idx. Patients whose best gap exceeds `max_gap` are dropped. Returns
    patient_id, left_idx, right_idx, gap (sorted by patient_id). O(n log n).
    """
    for frame, name in ((left, "left"), (right, "right")):
        _require(frame, name, ["patient_id", "time", "idx"])
    _check_gap(max_gap)
    lf = pd.DataFrame(
        {
            "patient_id": left["patient_id"].to_numpy(),
            "time": _times(left, "left").to_numpy(),
            "left_idx": left["idx"].to_numpy(),
        }
    ).dropna(subset=["time"])
    rf = pd.DataFrame(
        {
            "patient_id": right["patient_id"].to_numpy(),
            "time": _times(right, "right").to_numpy(),
            "right_idx": right["idx"].to_numpy(),
        }
    ).dropna(subset=["time"])
    # one key dtype on both sides (pandas infers str for non-empty object arrays only)
    lf["patient_id"] = lf["patient_id"].astype("string")
    rf["patient_id"] = rf["patient_id"].astype("string")
    rf = rf.sort_values(["time", "right_idx"], kind="stable").drop_duplicates(
        ["patient_id", "time"], keep="first"
    )
    rf["right_time"] = rf["time"]
    lf = lf.sort_values("time", kind="stable")
    cands = pd.concat(
        [_nearest_right(lf, rf, d) for d in ("backward", "forward")], ignore_index=True
    )
    if cands.empty:
        return pd.DataFrame(
            {
                c: pd.Series(dtype=d)
                for c, d in zip(
                    _PAIR_COLUMNS, ["object", "int64", "int64", "timedelta64[ns]"], strict=True
                )
            }
        )
    cands["gap"] = (cands["right_time"] - cands["time"]).abs()
    cands = cands.sort_values(
        ["patient_id", "gap", "time", "right_time", "left_idx", "right_idx"], kind="stable"
    )
    best = cands.drop_duplicates("patient_id", keep="first")
    if max_gap is not None:
        best = best[best["gap"] <= pd.Timedelta(max_gap)]
    out = best[_PAIR_COLUMNS].reset_index(drop=True)
    out["right_idx"] = out["right_idx"].astype(right["idx"].dtype)
    return out


def _unique_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """Labels with identical (patient, time, value) merged; conflicting duplicates raise."""
    lab = labels.drop_duplicates(["patient_id", "time", "value"])
    clash = lab.duplicated(["patient_id", "time"], keep=False)
    if clash.any():
        first = lab[clash].iloc[0]
        raise ValueError(
            f"labels hold {int(clash.sum())} rows with different values at the same time "
            f"for one patient (first: patient {first['patient_id']!r} at {first['time']}); "
            "resolve them before matching (`clerc validate` lists them)"
        )
    return lab


def match_nearest(
    rows: pd.DataFrame, labels: pd.DataFrame, max_gap: pd.Timedelta
) -> tuple[pd.DataFrame, int]:
    """For each row, the value of the same patient's label closest in time within max_gap.

    A label equally far before and after goes to the earlier one. Rows without a label
    within `max_gap` (or with a missing time) are dropped and counted. Returns the matched
    rows (input order, all input columns plus `value` and `gap`) and the number dropped.
    """
    _require(rows, "rows", ["patient_id", "time"])
    _require(labels, "labels", ["patient_id", "time", "value"])
    if max_gap is None:
        raise ValueError("match_nearest needs a max_gap (a pd.Timedelta)")
    _check_gap(max_gap)
    for reserved in ("value", "gap"):
        if reserved in rows.columns:
            raise ValueError(f"rows already has a column {reserved!r}")
    left = rows.reset_index(drop=True).assign(
        _pos=range(len(rows)), _time=_times(rows, "rows").to_numpy()
    )
    lab = pd.DataFrame(
        {
            "patient_id": labels["patient_id"].to_numpy(),
            "_time": _times(labels, "labels").to_numpy(),
            "value": labels["value"].to_numpy(),
        }
    ).dropna(subset=["_time"])
    lab = _unique_labels(lab.rename(columns={"_time": "time"})).rename(columns={"time": "_time"})
    lab = lab.assign(_label_time=lab["_time"]).sort_values("_time", kind="stable")
    valid = left.dropna(subset=["_time"]).sort_values("_time", kind="stable")
    valid = valid.assign(patient_id=valid["patient_id"].astype("string"))
    lab["patient_id"] = lab["patient_id"].astype("string")
    picks = []
    for direction in ("backward", "forward"):
        found = pd.merge_asof(
            valid,
            lab,
            on="_time",
            by="patient_id",
            direction=direction,
            tolerance=pd.Timedelta(max_gap),
            allow_exact_matches=True,
        )
        picks.append(
            found.assign(
                gap=(found["_label_time"] - found["_time"]).abs(),
                _order=0 if direction == "backward" else 1,
            )
        )
    both = pd.concat(picks, ignore_index=True).dropna(subset=["_label_time"])
    both = both.sort_values(["_pos", "gap", "_order"], kind="stable")
    matched = both.drop_duplicates("_pos", keep="first").sort_values("_pos")
    out = matched.drop(columns=["_pos", "_time", "_label_time", "_order"])
    return out.reset_index(drop=True), len(rows) - len(out)


def study_or_nearest(rows: pd.DataFrame, labels: pd.DataFrame, max_gap: pd.Timedelta) -> np.ndarray:
    """Each row's label: the value with the same study_id, else the same patient's value
    closest in time within ``max_gap`` (`match_nearest`); NaN when there is none.

    ``rows``: patient_id, study_id, time. ``labels``: patient_id, study_id (NA allowed),
    measured_at, value, already restricted to one task and source. Two different values
    for one study are an error naming the study (`clerc validate` reports them too).
    """
    _require(rows, "rows", ["patient_id", "study_id", "time"])
    _require(labels, "labels", ["patient_id", "study_id", "measured_at", "value"])
    lab = labels[labels["value"].notna()]
    by_study = lab[lab["study_id"].notna()].drop_duplicates(["study_id", "value"])
    clash = by_study["study_id"].duplicated(keep=False)
    if clash.any():
        raise ValueError(
            f"labels hold {int(clash.sum())} different values for study "
            f"{by_study.loc[clash, 'study_id'].iloc[0]!r}; resolve them before "
            "matching (`clerc validate` lists them)"
        )
    out = by_study.set_index("study_id")["value"].reindex(rows["study_id"].to_numpy())
    out = np.array(out.to_numpy(dtype=float, na_value=np.nan))  # a writable copy
    todo = np.flatnonzero(~np.isfinite(out))
    if todo.size == 0 or lab.empty:
        return out
    near, _ = match_nearest(
        pd.DataFrame(
            {
                "patient_id": rows["patient_id"].astype(str).to_numpy()[todo],
                "time": rows["time"].to_numpy()[todo],
                "pos": todo,
            }
        ),
        pd.DataFrame(
            {
                "patient_id": lab["patient_id"].astype(str).to_numpy(),
                "time": lab["measured_at"].to_numpy(),
                "value": lab["value"].to_numpy(float),
            }
        ),
        pd.Timedelta(max_gap),
    )
    out[near["pos"].to_numpy(int)] = near["value"].to_numpy(float)
    return out
