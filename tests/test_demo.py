"""``clerc demo``: its stages, and a stale cohort at --data refused rather than reused."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from clerc import cli
from clerc.demo import DEFAULT_PATIENTS, add_arguments, stage_commands, stale_cohort


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_demo_defaults_are_the_demo_profile_and_preset(tmp_path):
    args = _args("--data", str(tmp_path / "c"))
    stages = dict(stage_commands(args))
    assert stages["synth"][stages["synth"].index("--profile") + 1] == "demo"
    assert stages["synth"][stages["synth"].index("--patients") + 1] == str(DEFAULT_PATIENTS)
    assert stages["train"][stages["train"].index("--config") + 1] == "demo"
    assert "--supervised" in stages["benchmark"]


def _fake_cohort(root: Path, patients: int, seed: int = 0, profile: str = "demo") -> None:
    import dataclasses

    from clerc.synthetic.config import SynthConfig

    root.mkdir(parents=True)
    (root / "samples.parquet").write_bytes(b"")
    cfg = {k: (str(v) if isinstance(v, dict) else v)
           for k, v in dataclasses.asdict(SynthConfig.preset(profile)).items()}
    (root / "synth.json").write_text(json.dumps(
        {"patients": patients, "seed": seed, "config": cfg}, default=str))


def test_a_cohort_of_another_size_or_profile_is_stale(tmp_path):
    _fake_cohort(tmp_path / "same", DEFAULT_PATIENTS)
    assert stale_cohort(_args("--data", str(tmp_path / "same"))) is None
    _fake_cohort(tmp_path / "older", 1000)  # the previous demo's cohort
    assert "1000 patients" in stale_cohort(_args("--data", str(tmp_path / "older")))
    _fake_cohort(tmp_path / "small", 300)
    assert "300 patients" in stale_cohort(_args("--data", str(tmp_path / "small")))
    _fake_cohort(tmp_path / "paper", DEFAULT_PATIENTS, profile="paper")
    assert "profile" in stale_cohort(_args("--data", str(tmp_path / "paper")))
    assert stale_cohort(_args("--data", str(tmp_path / "none"))) is None


def test_demo_refuses_a_stale_cohort_with_one_line(tmp_path, capsys):
    _fake_cohort(tmp_path / "old", 300)
    code = cli.main(["demo", "--data", str(tmp_path / "old"), "--run", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "300 patients" in err and "remove the directory" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_profiles_are_valid_configs(profile):
    from clerc.synthetic.config import SynthConfig, availability_law

    law = availability_law(SynthConfig.preset(profile))
    assert law.sum() == pytest.approx(1.0)
