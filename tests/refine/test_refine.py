"""SAM refiner: prompt geometry, tiny SAM end to end, safe checkpoint loading, per-class overlap by score."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import numpy as np
import pytest

from text4seg.refine import (
    RefinedMask,
    RefineOptions,
    SamRefiner,
    connected_components,
    mask_prompt_logits,
    point_prompts,
    preprocess_shape,
    squared_distance_transform,
)

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")
from segment_anything.modeling import (  # noqa: E402
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)


def tiny_sam(seed: int = 0) -> Sam:
    """A ~200k-parameter SAM with the official geometry (1024 input, 16 px patches, 256x256 mask frame)."""
    torch.manual_seed(seed)
    dim = 32
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=1, embed_dim=dim, img_size=1024, mlp_ratio=2, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2, patch_size=16, qkv_bias=True, use_rel_pos=False, global_attn_indexes=(), window_size=16,
            out_chans=dim),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                     mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=dim),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


@pytest.fixture(scope="module")
def sam():
    return tiny_sam()


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class RecordingPredictor:
    """Wraps a predictor and records the prompts it receives."""

    def __init__(self, inner):
        self.inner, self.model, self.calls, self.images = inner, inner.model, [], 0

    def set_image(self, img):
        self.images += 1
        self.inner.set_image(img)

    def predict(self, **kwargs):
        self.calls.append(kwargs)
        return self.inner.predict(**kwargs)


class RaisingPredictor:
    def set_image(self, img):
        raise AssertionError("SAM must not encode an image whose masks are all empty")

    def predict(self, **kwargs):
        raise AssertionError("SAM must not be called for an empty mask")


# ---------------------------------------------------------------------------------------- mask prompt


def test_mask_prompt_keeps_aspect_on_wide_image():
    h, w = 300, 600
    coarse = np.zeros((h, w), bool)
    coarse[:, 300:] = True  # right half
    assert preprocess_shape(h, w, 1024) == (512, 1024)  # SAM: long side 1024, padding below
    logits = mask_prompt_logits(coarse, mask_logit=8.0, pad_logit=-20.0)
    assert logits.shape == (1, 256, 256) and logits.dtype == np.float32
    top, bottom = logits[0, :128], logits[0, 128:]
    assert np.all(top[:, 128:] == 8.0) and np.all(top[:, :128] == -8.0)  # image rows, exact columns
    assert np.all(bottom == -20.0)  # padding: no object there


def test_mask_prompt_keeps_aspect_on_tall_image():
    coarse = np.zeros((600, 300), bool)
    coarse[300:, :] = True  # bottom half
    logits = mask_prompt_logits(coarse)[0]
    assert np.all(logits[128:, :128] == 8.0) and np.all(logits[:128, :128] == -8.0)
    assert np.all(logits[:, 128:] == -20.0)


def test_mask_prompt_maps_back_onto_the_mask_through_sams_own_geometry(sam):
    h, w = 300, 600
    coarse = np.zeros((h, w), bool)
    coarse[60:240, 330:570] = True
    logits = torch.from_numpy(mask_prompt_logits(coarse))[None]
    back = sam.postprocess_masks(logits, preprocess_shape(h, w, 1024), (h, w))[0, 0].numpy() > 0
    assert (back != coarse).mean() < 0.01  # only border pixels of the 4x down-sampled frame may differ


def test_mask_prompt_from_grid_is_soft_and_aligned():
    grid = np.zeros((16, 16), bool)
    grid[:, 8:] = True
    logits = mask_prompt_logits(np.zeros((300, 600), bool), grid=grid)[0]
    assert logits[0, 0] == -8.0 and logits[0, 255] == 8.0 and -8.0 < logits[0, 128] < 8.0
    assert np.all(logits[128:] == -20.0)


# ------------------------------------------------------------------------------------------ points


def test_squared_distance_transform_exact_and_scipy_free(monkeypatch):
    m = np.zeros((5, 7), bool)
    m[1:4, 1:6] = True
    expected = np.zeros((5, 7), np.int64)
    expected[1:4, 1:6] = 1
    expected[2, 2:5] = 4
    assert np.array_equal(squared_distance_transform(m), expected)
    full = np.ones((3, 3), bool)
    assert squared_distance_transform(full)[1, 1] == 4  # the outside counts as background
    rng = np.random.default_rng(0)
    cases = [rng.random((23, 31)) < 0.7 for _ in range(5)]
    with_scipy = [squared_distance_transform(c) for c in cases]
    no_border = [squared_distance_transform(c, border=False) for c in cases]
    comps = [[x.nonzero() for x in connected_components(c)] for c in cases]
    monkeypatch.setitem(sys.modules, "scipy", None)
    for c, a, b, cc in zip(cases, with_scipy, no_border, comps):
        assert np.array_equal(squared_distance_transform(c), a)
        assert np.array_equal(squared_distance_transform(c, border=False), b)
        assert all(np.array_equal(x.nonzero(), y) for x, y in zip(connected_components(c), cc, strict=True))


def test_connected_components_order():
    m = np.zeros((6, 10), bool)
    m[0:2, 0:2] = True  # 4 px, first in raster order
    m[4:6, 0:2] = True  # 4 px
    m[0:3, 4:7] = True  # 9 px
    m[3, 7] = True  # diagonal neighbour of (2, 6): same component (8-connectivity)
    comps = connected_components(m)
    assert [int(c.sum()) for c in comps] == [10, 4, 4]
    assert comps[1][0, 0] and comps[2][5, 0]
    assert len(connected_components(m, limit=2)) == 2 and connected_components(np.zeros((2, 2), bool)) == []


def test_point_prompts_deterministic_inside_and_outside():
    m = np.zeros((100, 200), bool)
    m[20:80, 20:80] = True  # big square
    m[40:50, 150:160] = True  # small square
    coords, labels = point_prompts(m, positive_points=3, max_components=2, negative_points=2)
    assert labels.tolist() == [1, 1, 0, 0]
    # one point per square: no other point of a square is half as deep as its centre and outside its disk
    assert coords[:2].tolist() == [[49.5, 49.5], [154.5, 44.5]]  # big one first; ties -> first in raster order
    assert coords[2:].tolist() == [[116.5, 63.5], [176.5, 18.5]]  # open background between/around them
    for x, y in coords[2:]:
        assert not m[int(y), int(x)]
        assert np.sqrt(((np.argwhere(m) - [y, x]) ** 2).sum(1)).min() >= 0.0625 * 200  # off the coarse border
    again = point_prompts(m, positive_points=3, max_components=2, negative_points=2)
    assert np.array_equal(again[0], coords) and np.array_equal(again[1], labels)
    assert point_prompts(m, positive_points=1, max_components=1, negative_points=0)[1].tolist() == [1]
    assert point_prompts(np.zeros((4, 4), bool))[0].shape == (0, 2)


def test_point_prompts_spread_along_elongated_objects():
    bar = np.zeros((100, 200), bool)
    bar[40:60, 10:190] = True
    coords, labels = point_prompts(bar, positive_points=3, negative_points=0)
    assert labels.tolist() == [1, 1, 1]
    assert coords.tolist() == [[19.5, 49.5], [185.5, 55.5], [102.5, 44.5]]  # both ends, then the middle


def test_point_prompts_downscale_to_working_resolution():
    m = np.zeros((1000, 2000), bool)
    m[200:800, 200:800] = True
    coords, labels = point_prompts(m, positive_points=1, negative_points=0, resolution=200)
    assert labels.tolist() == [1] and coords.tolist() == [[495.0, 495.0]]  # pixel (49, 49) of the 100x200 map


def test_point_prompts_tiny_object_survives_downscaling():
    m = np.zeros((2000, 2000), bool)
    m[1001, 1003] = True
    coords, labels = point_prompts(m, resolution=64)
    assert coords.tolist() == [[1003.5, 1001.5]] and labels.tolist() == [1]


# -------------------------------------------------------------------------------------- tiny SAM


@pytest.mark.slow
def test_refine_end_to_end_embeds_once_and_sends_aligned_prompt(sam):
    refiner = SamRefiner(sam, RefineOptions(rounds=1))
    recorder = RecordingPredictor(refiner.predictor)
    refiner.predictor = recorder
    refiner.set_image(image(300, 600))
    coarse = np.zeros((300, 600), bool)
    coarse[:, 300:] = True
    first = refiner.refine(coarse)
    second = refiner.refine(~coarse)
    assert isinstance(first, RefinedMask) and first.mask.shape == (300, 600) and first.mask.dtype == bool
    assert isinstance(first.score, float) and np.isfinite(first.score)
    assert recorder.images == 1 and refiner.encodings == 1  # one embedding for the image
    assert len(recorder.calls) == 4  # (1 + rounds) per mask
    sent = recorder.calls[0]["mask_input"]
    assert np.array_equal(sent, refiner.mask_prompt(coarse)) and np.all(sent[0, 128:] == -20.0)
    assert recorder.calls[1]["mask_input"].shape == (1, 256, 256)  # the fed-back low-res logits
    assert not np.array_equal(recorder.calls[1]["mask_input"], sent)
    assert np.all(first.points[first.point_labels == 1][:, 0] >= 300)  # positives in the right half
    assert second.mask.shape == (300, 600)
    refiner.set_image(image(40, 50, seed=1))
    refiner.refine(np.ones((40, 50), bool))
    assert refiner.encodings == 2


def test_refine_checks_shape_and_image(sam):
    refiner = SamRefiner(sam)
    with pytest.raises(RuntimeError, match="set_image"):
        refiner.refine(np.ones((4, 4), bool))
    refiner.set_image(image(30, 40))
    with pytest.raises(ValueError, match=r"\(40, 30\).*\(30, 40\)"):
        refiner.refine(np.ones((40, 30), bool))


def test_empty_mask_skips_sam():
    refiner = SamRefiner(predictor=RaisingPredictor())
    refiner.set_image(image(20, 30))
    out = refiner.refine(np.zeros((20, 30), bool))
    assert out.score == 0.0 and out.mask.shape == (20, 30) and not out.mask.any() and out.box is None
    labels = refiner.refine_labels(np.zeros((20, 30), np.int64), class_ids=[1, 2])
    assert labels.scores == {1: 0.0, 2: 0.0} and not labels.label_map.any()
    assert refiner.encodings == 0


# ------------------------------------------------------------------------------------------ checkpoints


class NotATensor:
    pass


def test_from_checkpoint_loads_with_weights_only(tmp_path, monkeypatch):
    import segment_anything

    saved = tiny_sam(seed=1)
    path = tmp_path / "sam_tiny.pth"
    torch.save(saved.state_dict(), path)
    built_with = []

    def builder(checkpoint=None):
        built_with.append(checkpoint)
        return tiny_sam(seed=2)

    load_calls = []
    real_load = torch.load

    def spy_load(*args, **kwargs):
        load_calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", builder)
    monkeypatch.setattr(torch, "load", spy_load)
    refiner = SamRefiner.from_checkpoint(path, "vit_b", device="cpu", options=RefineOptions(rounds=0))
    assert built_with == [None]  # segment_anything never sees the checkpoint (it would torch.load unsafely)
    assert load_calls and all(kw.get("weights_only") is True for kw in load_calls)
    model = refiner.predictor.model
    for name, value in saved.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert refiner.options.rounds == 0 and not model.training

    evil = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(1), "payload": NotATensor()}, evil)
    with pytest.raises(ValueError, match="evil.pth.*weights_only"):
        SamRefiner.from_checkpoint(evil, partial(tiny_sam, 0), device="cpu")
    wrong = tmp_path / "wrong.pth"
    torch.save({"weights": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth.*do not fit"):
        SamRefiner.from_checkpoint(wrong, partial(tiny_sam, 0), device="cpu")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        SamRefiner.from_checkpoint(tmp_path / "missing.pth", "vit_b")
    with pytest.raises(ValueError, match="unknown SAM model_type 'vit_x'"):
        SamRefiner.from_checkpoint(path, "vit_x")


def test_missing_sam_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(ImportError, match=r"pip install 'text4seg\[sam\]'"):
        SamRefiner(object())


def test_refine_module_imports_without_torch():
    code = "import sys, text4seg.refine; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------- multi-class


class ScoredPredictor:
    """Fake SAM: the class under refinement is read from the first positive point; each class grows into
    the other's half by a few columns, with a fixed score per class."""

    def __init__(self, coarse, grown, scores):
        self.coarse, self.grown, self.scores = coarse, grown, scores

    def set_image(self, img):
        pass

    def predict(self, point_coords, point_labels, box, mask_input, multimask_output):
        x, y = point_coords[0]
        cls = int(self.coarse[int(y), int(x)])
        return self.grown[cls][None], np.array([self.scores[cls]]), np.zeros((1, 256, 256), np.float32)


def test_refine_labels_resolves_overlaps_by_score_not_order():
    coarse = np.zeros((20, 20), np.int64)
    coarse[:, :10] = 1
    coarse[:, 10:] = 2
    grown = {1: np.zeros((20, 20), bool), 2: np.zeros((20, 20), bool)}
    grown[1][:, :13] = True  # class 1 claims columns 0..12
    grown[2][:, 8:] = True  # class 2 claims columns 8..19: overlap 8..12
    for scores, overlap_winner in (({1: 0.9, 2: 0.6}, 1), ({1: 0.3, 2: 0.8}, 2)):
        for order in ([1, 2], [2, 1]):
            refiner = SamRefiner(predictor=ScoredPredictor(coarse, grown, scores), options=RefineOptions(rounds=0))
            refiner.set_image(image(20, 20))
            out = refiner.refine_labels(coarse, class_ids=order)
            assert out.scores == scores
            assert np.all(out.label_map[:, 8:13] == overlap_winner)
            assert np.all(out.label_map[:, :8] == 1) and np.all(out.label_map[:, 13:] == 2)
    # equal scores: the lower class id wins, whatever the order
    refiner = SamRefiner(predictor=ScoredPredictor(coarse, grown, {1: 0.5, 2: 0.5}), options=RefineOptions(rounds=0))
    refiner.set_image(image(20, 20))
    assert np.all(refiner.refine_labels(coarse, [2, 1]).label_map[:, 8:13] == 1)


def test_refine_labels_fill_and_untouched_classes():
    coarse = np.zeros((10, 10), np.int64)
    coarse[:, 5:] = 3
    shrunk = {3: np.zeros((10, 10), bool)}
    shrunk[3][:, 7:] = True
    refiner = SamRefiner(predictor=ScoredPredictor(coarse, shrunk, {3: 0.7}), options=RefineOptions(rounds=0))
    refiner.set_image(image(10, 10))
    kept = refiner.refine_labels(coarse, [3]).label_map
    assert np.all(kept[:, 5:] == 3) and np.all(kept[:, :5] == 0)  # unclaimed pixels keep the coarse label
    filled = refiner.refine_labels(coarse, [3], fill_id=0).label_map
    assert np.all(filled[:, 7:] == 3) and np.all(filled[:, :7] == 0)
    with pytest.raises(ValueError, match="integer map"):
        refiner.refine_labels(coarse.astype(float), [3])


def test_options_validated():
    with pytest.raises(ValueError, match="rounds"):
        RefineOptions(rounds=-1)
    with pytest.raises(ValueError, match="no prompt"):
        RefineOptions(use_mask_prompt=False, positive_points=0)
