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
