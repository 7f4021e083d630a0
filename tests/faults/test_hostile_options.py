"""Numeric options at 0, negative and absurd values: one line, ``text4seg VERB: error: ...``, exit 1, before any
model or data is loaded (argparse type errors exit 2)."""

from __future__ import annotations

import pytest

from text4seg.cli import main

CASES = [
    (["train", "--data", "x.json", "--grid", "0"], "grid '0': grid size '0': height and width must be >= 1"),
    (["train", "--data", "x.json", "--grid", "1000000000"],
     "grid '1000000000': height and width must be <= 8192"),
    (["train", "--data", "x.json", "--batch-size", "-1"], "batch_size -1: expected an integer >= 1"),
    (["train", "--data", "x.json", "--max-steps", "0"], "max_steps 0: expected an integer >= 1"),
    (["train", "--data", "x.json", "--lr", "1e400"], "lr inf: expected a finite number > 0"),
    (["train", "--data", "x.json", "--image-size", "0"],
     "image_size '0': grid size '0': height and width must be >= 1"),
    (["train", "--data", "x.json", "--max-data-mb", "-1"], "max_data_mb -1.0: expected a finite number > 0"),
    (["eval", "synthetic", "--model", "m", "--batch-size", "-1"], "batch_size must be >= 1, got -1"),
    (["eval", "synthetic", "--model", "m", "--limit", "-5"], "limit must be >= 0, got -5"),
    (["eval", "synthetic", "--model", "m", "--save-vis", "-1"], "save_vis must be >= 0, got -1"),
    (["eval", "synthetic", "--model", "m", "--max-new-tokens", "-3"], "max_new_tokens -3: expected an integer >= 1"),
    (["segment", "x.png", "q", "--model", "m", "--max-new-tokens", str(10**9)],
     "max_new_tokens 1000000000: at most 1000000"),
    (["segment", "x.png", "q", "--model", "m", "--max-new-tokens", "0"], "max_new_tokens 0: expected an integer >= 1"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_numeric_options_give_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"text4seg {argv[0]}: error: {message}"]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_non_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--batch-size", "many"])
    assert info.value.code == 2
    assert "argument --batch-size: invalid int value: 'many'" in capsys.readouterr().err
