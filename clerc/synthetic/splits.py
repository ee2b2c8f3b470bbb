"""Patient splits: exact 80/10/10 per block of ten, then a small repair for empty tasks.

``split_of`` depends only on the seed and the patient's block, so a patient keeps its
split when the cohort grows. A small cohort can still leave a binary task without a
positive patient in val or test; ``repair_splits`` then swaps a positive train patient
with a val/test patient whose move empties nothing, deterministically, and reports it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def split_of(index: int, seed: int, fractions: tuple[float, float, float]) -> str:
    """Split of patient ``index``: a seeded permutation of the slots of its block of ten."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), index // 10, 7]))
    slot = int(rng.permutation(10)[index % 10])
    n_train = int(round(10 * fractions[0]))
    n_val = int(round(10 * (fractions[0] + fractions[1]))) - n_train
    return "train" if slot < n_train else "val" if slot < n_train + n_val else "test"


def _positives(labels: pd.DataFrame) -> pd.DataFrame:
    """patient x (source, task) table of 'has a positive label' for the binary tasks."""
    binary = labels[labels["task"] != "lvef"]
    key = binary["source_modality"].astype(str) + ":" + binary["task"].astype(str)
    pos = (binary["value"] > 0.5).groupby([binary["patient_id"], key]).any()
    return pos.unstack(fill_value=False).astype(bool)


def repair_splits(samples: pd.DataFrame, labels: pd.DataFrame) -> list[dict]:
    """Give every binary task a positive patient in val and test where train can spare one.

    Edits ``samples["split"]`` in place; returns the swaps made (patient ids and why).
    """
    split = samples.drop_duplicates("patient_id").set_index("patient_id")["split"].astype(str)
    pos = _positives(labels).reindex(split.index, fill_value=False)
    order = {p: i for i, p in enumerate(sorted(split.index))}
    swaps = []
    for target in ("test", "val"):
        for task in pos.columns:
            counts = pos.groupby(split).sum()
            if task not in counts or counts.get(task, pd.Series()).get(target, 0) > 0:
                continue
            donors = [p for p in pos.index[pos[task] & (split == "train")]]
            if counts[task].get("train", 0) < 2 or not donors:
                continue
            in_target = counts.loc[target] if target in counts.index else None
            safe = [
                p
                for p in split.index[split == target]
                if in_target is None or not (pos.loc[p] & (in_target <= 1)).any()
            ]
            if not safe:
                continue
            donor = min(donors, key=lambda p: order[p])
            back = min(safe, key=lambda p: order[p])
            split[donor], split[back] = target, "train"
            swaps.append({"to": target, "patient_id": donor, "back_to_train": back, "task": task})
    samples["split"] = samples["patient_id"].map(split).astype("string")
    return swaps
