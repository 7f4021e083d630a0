"""The command layer: every verb's --help (defaults shown, no torch imported), the option dataclasses as
flags, one-line errors, and the options reaching the library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from text4seg.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_help_shows_defaults_and_imports_no_torch(verb):
    code = (
        "import sys, contextlib, io\n"
        "from text4seg.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        f"        main([{verb!r}, '--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "print(buf.getvalue())\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.rstrip().endswith("NO-TORCH")
    assert f"usage: text4seg {verb}" in out
    # every option line's help says its default (argparse wraps help, so join the lines of each option)
    import re

    blocks = re.split(r"\n  (?=-)", out.split("options:", 1)[1])
    for block in blocks[1:]:
        text = " ".join(block.split())
        if text.startswith("-h, --help"):
            continue
        assert "default" in text or "required" in text, f"{verb}: no default in help of {text[:60]!r}"


def test_top_level_help_lists_verbs(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for verb in COMMANDS:
        assert verb in out


def test_train_flags_come_from_train_config():
    import argparse
    import dataclasses

    from text4seg.cli import train as train_cli
    from text4seg.training import TrainConfig

    parser = argparse.ArgumentParser()
    train_cli.configure(parser)
    dests = {a.dest for a in parser._actions}
    cli_fields = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)}
    assert cli_fields <= dests
    assert {"device", "load_in_4bit", "load_in_8bit", "attn", "trust_remote_code", "question_template"} <= dests
    assert "dtype" not in dests  # training's weight dtype follows --precision
    args = parser.parse_args(["--output-dir", "o", "--image-root", "r", "--data", "a.json:2", "--data", "b.json",
                              "--no-full", "--curriculum-grid", "none", "--resume"])
    assert (args.out, args.data_root, args.data, args.full, args.curriculum_grid, args.resume) == (
        "o", "r", ["a.json:2", "b.json"], False, "none", True)
    help_text = parser.format_help()
    assert "(default: 1; tiny: 100)" in " ".join(help_text.split())  # --epochs


def test_tiny_model_starts_from_the_recipe(monkeypatch, tmp_path):
    from text4seg.presets import TINY_PRESET
    from text4seg.training import recipe

    seen = {}

    def fake_train(config, **kwargs):
        seen["config"] = config
        return recipe.TrainResult(output_dir=Path(config.out), global_step=0, stopped_by_time=False, seconds=0.0)

    monkeypatch.setattr(recipe, "train", fake_train)
    data = tmp_path / "d.json"
    data.write_text("[]")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--lr", "0.01"]) == 0
    config = seen["config"]
    assert config.cell_noise == TINY_PRESET.train.cell_noise == 0.5
    assert config.curriculum_grid == TINY_PRESET.train.curriculum_grid and config.lr == 0.01
    assert main(["train", "--model", "some/model", "--data", str(data), "--out", str(tmp_path / "o")]) == 0
    assert seen["config"].cell_noise == 0.0 and seen["config"].curriculum_grid is None


def test_eval_load_and_decoding_options_reach_the_loader(monkeypatch, tmp_path, capsys):
    from text4seg.modeling import loading

    seen = {}

    def fake_load(model, adapter=None, options=None, **kwargs):
        seen.update(model=model, options=options)
        raise ValueError("stop here")

    monkeypatch.setattr(loading, "load_model", fake_load)
    from fixtures_data import make_refcoco_layout

    layout = make_refcoco_layout(tmp_path / "data")
    code = main(["eval", "refer-seg", "--model", "some/model", "--data-root", str(layout["root"]), "--dataset",
                 "refcoco", "--split", "train", "--out", str(tmp_path / "out"), "--load-in-4bit", "--decoding",
                 "constrained", "--dtype", "float32", "--device", "cpu"])
    assert code == 1 and "stop here" in capsys.readouterr().err
    options = seen["options"]
    assert seen["model"] == "some/model"
    assert (options.load_in_4bit, options.dtype, options.device) == (True, "float32", "cpu")
    settings = json.loads((tmp_path / "out" / "run.json").read_text())
    assert settings["decoding"] == "constrained" and settings["quantization"] == "4bit"


def test_bad_options_are_one_line_errors(capsys, tmp_path):
    assert main(["eval", "refer-seg", "--model", "m", "--load-in-4bit", "--load-in-8bit"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "text4seg eval: error: load_in_4bit and load_in_8bit: choose one"
    assert main(["train", "--data", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.json" in err
    assert main(["train", "--data", "x.json", "--lr", "-1"]) == 1
    assert "lr -1.0: expected a finite number > 0" in capsys.readouterr().err


def test_core_only_install_train_names_the_extra(tmp_path):
    """With peft and accelerate not installed, ``text4seg train`` prints one line naming the extra."""
    data = tmp_path / "d.json"
    data.write_text("[]")
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('peft', 'accelerate'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] in ('peft', 'accelerate') else real(n, *a)\n"
        "from text4seg.cli import main\n"
        f"sys.exit(main(['train', '--data', {str(data)!r}, '--out', {str(tmp_path / 'o')!r}]))\n"
    )
    done = _run(code)
    assert done.returncode == 1
    assert done.stderr.strip() == "text4seg train: error: text4seg train needs peft: pip install 'text4seg[train]'"


def test_segment_overlay_goes_beside_the_mask(monkeypatch, tmp_path):
    from text4seg import segment as segment_module
    from text4seg.segment import overlay_path_for

    assert overlay_path_for(tmp_path / "out" / "dog.png") == tmp_path / "out" / "dog_overlay.png"
    seen = {}
    monkeypatch.setattr(segment_module, "segment_image", lambda image, queries, **kw: seen.update(kw))
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "img.png", "the dog", "--model", "m", "--out", "sub/dog.png"]) == 0
    assert seen["overlay"] is True and seen["out"] == "sub/dog.png"
    assert main(["segment", "img.png", "the dog", "--model", "m", "--no-overlay"]) == 0
    assert seen["overlay"] is False
    assert main(["segment", "img.png", "x", "--model", "m", "--question-index", "2", "--decoding", "plain"]) == 0
    assert seen["question_index"] == 2 and seen["decoding"].decoding == "plain"
    assert list(tmp_path.iterdir()) == []  # nothing written where the user did not point


def test_eval_class_chunk_reaches_the_run_settings(monkeypatch, tmp_path, capsys):
    from fixtures_data import make_ade20k_layout

    from text4seg.modeling import loading

    def fake_load(model, adapter=None, options=None, **kwargs):
        raise ValueError("stop here")

    monkeypatch.setattr(loading, "load_model", fake_load)
    layout = make_ade20k_layout(tmp_path / "data")
    code = main(["eval", "semantic-seg", "--model", "m", "--data-root", str(layout["root"]), "--dataset", "ADE-150",
                 "--split", "validation", "--out", str(tmp_path / "out"), "--class-chunk", "40"])
    assert code == 1 and "stop here" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "run.json").read_text())["class_chunk"] == 40
    assert main(["eval", "refer-seg", "--model", "m", "--class-chunk", "5"]) == 1
    assert capsys.readouterr().err.strip() == ("text4seg eval: error: task refer-seg: class_chunk applies to "
                                               "the class-list tasks (semantic-seg, part-seg), not referring tasks")
