"""Hostile training JSON through ``Text4SegDataset`` (what ``text4seg train`` reads): each file or item is refused
with a message naming the file, the item and the field (or skipped and counted with ``skip_bad``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text4seg.training.config import TrainConfig
from text4seg.training.data import DataFiles, Text4SegDataset


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from text4seg.modeling import load_model

    return load_model(tiny_model_dir, device="cpu")


def item(**fields) -> dict:
    base = {"id": "a", "image": "ok.png",
            "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]}
    base.update(fields)
    return base


@pytest.fixture
def root(tmp_path) -> Path:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.png")
    return tmp_path


def dataset(loaded, path: Path, **kwargs) -> Text4SegDataset:
    return Text4SegDataset([path], loaded.processor, loaded.config, **kwargs)


def write(path: Path, payload) -> Path:
    path.write_bytes(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    return path


def test_not_json_not_a_list_not_utf8(root, loaded):
    path = write(root / "a.json", b"[{'id': 1}]")
    with pytest.raises(ValueError, match=r"^.*a\.json: not a valid JSON file: Expecting property name enclosed in "
                       r"double quotes: line 1 column 3 \(char 2\)$"):
        dataset(loaded, path)
    path = write(root / "b.json", {"items": []})
    with pytest.raises(ValueError, match=r"b\.json: expected a JSON list of items, got dict$"):
        dataset(loaded, path)
    path = write(root / "c.json", b'[{"id": "\xff\xfe"}]')
    with pytest.raises(ValueError, match=r"c\.json: not UTF-8 text \(byte 9: invalid start byte\); training JSON "
                       r"must be UTF-8$"):
        dataset(loaded, path)


@pytest.mark.parametrize("bad,message", [
    ({"conversations": None}, "'conversations' must be a non-empty list"),
    ({"conversations": []}, "'conversations' must be a non-empty list"),
    ({"conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "<image>\nQ"}]},
     "turns 0/1 must be {'from': 'human', 'value': str} then {'from': 'gpt', 'value': str}"),
    ({"conversations": [{"from": "human", "value": "<image>\n<image>\nQ"}, {"from": "gpt", "value": "A"}]},
     "'<image>' must appear once, in the first human turn (found 2)"),
    ({"conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"},
                        {"from": "human", "value": "<image>\nQ2"}, {"from": "gpt", "value": "B"}]},
     "'<image>' must appear once, in the first human turn (found 2)"),
    ({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A <image>"}]},
     "'<image>' must appear once, in the first human turn (found 1)"),
    ({"image": 7}, "'image' must be a path string"),
    ({"crop_size": [5, 5, 1, 1]}, "'crop_size' must be [left, top, right, bottom] with an image"),
])
def test_malformed_items_name_file_item_and_field(root, loaded, bad, message):
    path = write(root / "d.json", [item(id="good"), item(id="bad", **bad)])
    with pytest.raises(ValueError) as info:
        dataset(loaded, path)
    assert str(info.value) == f"{path}: item 'bad' (index 1): {message} (use --skip-bad to skip such items)"
    kept = dataset(loaded, path, skip_bad=True)
    assert len(kept) == 1 and kept.skipped == [f"{path}: item 'bad' (index 1): {message}"]


@pytest.mark.parametrize("image", ["../outside.png", "sub/../../outside.png", "ABSOLUTE"])
def test_image_paths_leaving_the_root_are_refused_unless_allowed(root, loaded, image):
    inner = root / "data"
    (inner / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "outside.png")
    image = str(root / "outside.png") if image == "ABSOLUTE" else image
    path = write(inner / "d.json", [item(image=image)])
    with pytest.raises(ValueError) as info:
        dataset(loaded, path)
    assert str(info.value) == (f"{path}: item 'a' (index 0): image {image!r} is outside the data root {inner} (an "
                               "absolute path or '..'); pass --allow-outside-root if the file is trusted (use "
                               "--skip-bad to skip such items)")
    assert len(dataset(loaded, path, allow_outside_root=True)) == 1
    assert TrainConfig(allow_outside_root=True).allow_outside_root


def test_a_symlink_out_of_the_root_is_outside_too(root, loaded):
    inner = root / "data"
    inner.mkdir()
    (inner / "link.png").symlink_to(root / "ok.png")
    with pytest.raises(ValueError, match="is outside the data root"):
        dataset(loaded, write(inner / "d.json", [item(image="link.png")]))


def test_a_descriptor_of_the_wrong_grid_is_reencoded_or_refused(root, loaded):
    # the tiny model's grid is 8 x 8: a 2 x 4 descriptor is a grid of another size: re-encoded to 8 x 8 on load
    answer = "Sure.\n<seg>others| target| target| others\n others| others| others| others\n</seg>"
    path = write(root / "g.json", [item(conversations=[{"from": "human", "value": "<image>\nQ"},
                                                        {"from": "gpt", "value": answer}])])
    ds = dataset(loaded, path)
    encoded = ds[0]
    assert encoded["input_ids"].shape == encoded["labels"].shape
    # ragged rows are no grid at all: refused, naming the item
    ragged = "Sure.\n<seg>others| target\n others\n</seg>"
    path = write(root / "r.json", [item(conversations=[{"from": "human", "value": "<image>\nQ"},
                                                        {"from": "gpt", "value": ragged}])])
    with pytest.raises(ValueError) as info:
        dataset(loaded, path)
    assert str(info.value) == (f"{path}: item 'a' (index 0): round 0: the descriptor is not a clean 2x2 grid (row 1: "
                               "1 cell, padded with 'others') (use --skip-bad to skip such items)")


def test_a_huge_file_is_refused_by_size_before_it_is_read(root, loaded, monkeypatch):
    path = root / "huge.json"
    with open(path, "wb") as handle:  # a sparse 1 GB file: nothing is read to refuse it
        handle.truncate(1_000_000_001)
    opened = []
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: opened.append(self) or "")
    with pytest.raises(ValueError) as info:
        Text4SegDataset([path], loaded.processor, loaded.config, files=DataFiles(max_mb=4096 / 8))
    assert str(info.value) == (f"{path}: 1000.0 MB is larger than --max-data-mb 512; split the file or raise "
                               "--max-data-mb")
    assert opened == []


def test_train_command_refuses_a_file_over_the_limit(root, capsys):
    from text4seg.cli import main

    path = write(root / "d.json", [item()] * 50)
    assert main(["train", "--data", str(path), "--out", str(root / "run"), "--max-data-mb", "0.001"]) == 1
    assert capsys.readouterr().err.strip() == (f"text4seg train: error: {path}: 0.0 MB is larger than "
                                               "--max-data-mb 0.001; split the file or raise --max-data-mb")
