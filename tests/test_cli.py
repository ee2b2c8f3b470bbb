"""The ``clerc`` entry point: bad input ends in one named line and exit 2, ``--debug`` raises."""

from __future__ import annotations

import pytest

from clerc.cli import describe_error, main


def test_user_error_is_one_line_naming_the_file(tmp_path, capsys):
    code = main(["embed", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"clerc embed: {tmp_path / 'samples.parquet'}: "
                                        "manifest table 'samples' not found"]


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(FileNotFoundError, match="samples.parquet"):
        main(["--debug", "embed", "--checkpoint", str(tmp_path / "x.pt"), "--data",
              str(tmp_path)])


def test_synth_preview_of_a_missing_cohort(tmp_path, capsys):
    assert main(["synth", "--preview", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "ground_truth.parquet" in err and "Traceback" not in err


def test_os_errors_read_file_then_reason():
    exc = FileNotFoundError(2, "No such file or directory", "runs/x/ckpt.pt")
    assert describe_error(exc) == "runs/x/ckpt.pt: No such file or directory"
    assert describe_error(ValueError("a\n  b")) == "a b"


@pytest.mark.parametrize("argv", [
    ["synth", "--patients", "0", "--out", "x"],
    ["prepare", "x", "--workers", "0"],
    ["embed", "--checkpoint", "a", "--data", "b", "--batch-size", "0"],
    ["train", "--data", "x", "--epochs", "-1"],
    ["baselines", "train", "--data", "x", "--out", "y", "--batch-size", "0"],
    ["benchmark", "--bootstrap", "many"],
])
def test_counts_below_their_minimum_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "expected" in capsys.readouterr().err


def _planted_cases(tmp_path):
    """(argv, module, attribute) per command: the library call its ``run`` makes first."""
    d, o = str(tmp_path), str(tmp_path / "out")
    (tmp_path / "emb.npz").write_bytes(b"")
    (tmp_path / "r.json").write_text("{}")
    return {
        "synth": (["synth", "--out", o], "clerc.synthetic.writer", "synthesize"),
        "adapt": (["adapt", "ptbxl", d, "--out", o], "clerc.adapters.ptbxl", "adapt_ptbxl"),
        "validate": (["validate", d], "clerc.data.validate", "validate_manifest"),
        "prepare": (["prepare", d], "clerc.data.packed", "prepare"),
        "train": (["train", "--data", d, "--out", o, "--device", "cpu"], "clerc.train.trainer",
                  "train"),
        "baselines": (["baselines", "train", "--data", d, "--out", o, "--device", "cpu"],
                      "baselines.runner", "train_all"),
        "embed": (["embed", "--checkpoint", "x.pt", "--data", d], "clerc.evaluate.embed",
                  "embed_cached"),
        "benchmark": (["benchmark", "--embeddings", str(tmp_path / "emb.npz"), "--data", d,
                       "--out", o, "--no-report"], "clerc.data.manifest", "read_manifest"),
        "report": (["report", "--results", str(tmp_path / "r.json"), "--out", o],
                   "clerc.report.html", "render"),
        "gate": (["gate", "--baseline", str(tmp_path / "r.json"), "--results",
                  str(tmp_path / "r.json")], "clerc.gate", "compare"),
        "demo": (["demo", "--data", str(tmp_path / "cohort"), "--run", o],
                 "clerc.synthetic.writer", "synthesize"),
        "compare": (["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", o],
                    "clerc.compare.runs", "load_run"),
    }


def _plant(monkeypatch, module: str, attr: str, exc: BaseException) -> None:
    import importlib

    def planted(*args, **kwargs):
        raise exc

    monkeypatch.setattr(importlib.import_module(module), attr, planted)


def test_every_command_is_covered_by_the_planted_error_test(tmp_path):
    from clerc.cli import COMMANDS

    assert sorted(_planted_cases(tmp_path)) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(__import__("clerc.cli").cli.COMMANDS))
@pytest.mark.parametrize("bug", [KeyError("study_id"), AttributeError("no attribute 'x'"),
                                 TypeError("planted")])
def test_a_bug_is_never_dressed_as_a_user_error(command, bug, tmp_path, monkeypatch, capsys):
    import traceback

    argv, module, attr = _planted_cases(tmp_path)[command]
    _plant(monkeypatch, module, attr, bug)
    for debug in ([], ["--debug"]):  # with or without --debug: the traceback, never exit 2
        with pytest.raises(type(bug)) as info:
            main([*debug, *argv])
        shown = "".join(traceback.format_exception(info.value))
        assert "Traceback" in shown and "in planted" in shown
        assert f"clerc {command}:" not in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(__import__("clerc.cli").cli.COMMANDS))
def test_a_user_error_is_one_line_and_debug_shows_its_traceback(command, tmp_path,
                                                                monkeypatch, capsys):
    argv, module, attr = _planted_cases(tmp_path)[command]
    _plant(monkeypatch, module, attr, ValueError(f"{tmp_path}/x.csv row 3: bad value 'q'"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    stage = "synth" if command == "demo" else command  # the demo runs `clerc synth` first
    assert f"clerc {stage}: {tmp_path}/x.csv row 3: bad value 'q'" in err.splitlines()
    with pytest.raises(ValueError, match="bad value"):
        main(["--debug", *argv])
