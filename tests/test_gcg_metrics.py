"""GCG metrics (text4seg.gcg_metrics) on hand-made cases: greedy mIoU, mask recall, AP50, CIDEr, METEOR."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from text4seg.datasets.coco_masks import encode_rle
from text4seg.gcg_metrics import (
    BagOfWordsSimilarity,
    BertPhraseSimilarity,
    caption_scores,
    greedy_miou,
    iou_matrix,
    mask_ap50,
    recall_matches,
    simple_tokenize,
)


def _strip(start, end, width=8):
    mask = np.zeros((1, width), dtype=bool)
    mask[0, start:end] = True
    return mask


GT = [_strip(0, 4), _strip(4, 8)]
PRED = [_strip(0, 2), _strip(1, 5)]  # IoU with GT: [[1/2, 0], [3/5, 1/7]]


def test_iou_matrix_and_greedy_miou():
    assert iou_matrix(PRED, GT) == pytest.approx(np.array([[0.5, 0.0], [0.6, 1 / 7]]))
    # greedy: 3/5 (pred 1 - gt 0) first; then pred 0 - gt 1 has IoU 0, so only one pair counts
    assert greedy_miou(PRED, GT) == pytest.approx(0.6)
    assert greedy_miou([], GT) == 0.0 and greedy_miou(PRED, []) == 0.0
    assert iou_matrix([_strip(0, 0)], [_strip(0, 0)]).tolist() == [[0.0]]  # empty union


def test_bag_of_words_similarity():
    sims = BagOfWordsSimilarity().matrix(["A man", "Red  car", "!"], ["the man", "red car"])
    assert sims == pytest.approx(np.array([[0.5, 0.0], [0.0, 1.0], [0.0, 0.0]]))


def test_recall_stops_at_the_first_failing_pair():
    sim = BagOfWordsSimilarity()
    gt = [_strip(0, 4), _strip(4, 8)]
    pred = [_strip(0, 4), _strip(4, 7)]  # IoU 1 and 3/4
    assert recall_matches(gt, ["a man", "a dog"], pred, ["man", "dog"], sim) == [(0, 0), (1, 1)]
    # the best pair's phrases differ: GLaMM stops there, though the second pair would pass
    assert recall_matches(gt, ["a man", "a dog"], pred, ["cat", "dog"], sim) == []
    assert recall_matches(gt, ["a man", "a dog"], [_strip(0, 1)], ["man"], sim) == []  # IoU 1/4 < 0.5
    assert recall_matches(gt, ["a man", "a dog"], [], [], sim) == []
    with pytest.raises(ValueError, match="2 ground-truth masks for 1 labels"):
        recall_matches(gt, ["a man"], pred, ["man", "dog"], sim)


@pytest.mark.slow  # imports transformers' BERT
def test_bert_similarity_from_a_local_tiny_bert(tmp_path):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "the", "dog"]) + "\n")
    torch.manual_seed(0)
    BertTokenizer(str(vocab)).save_pretrained(tmp_path / "bert")
    BertModel(BertConfig(vocab_size=9, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(tmp_path / "bert")
    sim = BertPhraseSimilarity(tmp_path / "bert")
    assert sim.name == "BERT mean-pooled cosine (bert)"
    got = sim.matrix(["a man", "the dog"], ["a man", "dog"])
    model = BertModel.from_pretrained(tmp_path / "bert").eval()
    tokenizer = BertTokenizer.from_pretrained(tmp_path / "bert")

    def embed(text):
        with torch.no_grad():
            return model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0].mean(0).numpy()

    u, v = embed("the dog"), embed("dog")
    assert got[0, 0] == pytest.approx(1.0)
    assert got[1, 1] == pytest.approx(float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)), abs=1e-6)
    with pytest.raises(FileNotFoundError, match="similarity model directory"):
        BertPhraseSimilarity(tmp_path / "missing")


def test_mask_ap50():
    m = np.zeros((4, 4), dtype=bool)
    m[:2] = True
    gt = [[encode_rle(m)]]
    assert mask_ap50(gt, [[encode_rle(m)]], [(4, 4)]) == pytest.approx(1.0)
    # both score 1.0: the FP ranked first gives precision 1/2 at the only recall level
    assert mask_ap50(gt, [[encode_rle(~m), encode_rle(m)]], [(4, 4)]) == pytest.approx(0.5)
    assert mask_ap50(gt, [[]], [(4, 4)]) == 0.0 and mask_ap50([[]], [[encode_rle(m)]], [(4, 4)]) is None


REFS = {"a": ["red apple"], "b": ["blue car"]}


@pytest.mark.slow  # Java: the PTB tokenizer and METEOR-1.5 (its paraphrase table loads for a while)
@pytest.mark.skipif(shutil.which("java") is None, reason="no java on the PATH (METEOR and the PTB tokenizer run it)")
def test_cider_hand_checked_and_meteor_as_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # identical captions, no shared words: cosine 1 for unigrams and bigrams, no 3-/4-grams -> 10 * 2/4
    assert caption_scores(REFS, {"a": "red apple", "b": "blue car"})["cider"] == pytest.approx(5.0)
    candidates = {"a": "Red apple.", "b": "a car"}
    got = caption_scores(REFS, candidates)
    # b: unigram cosine 1/2 ("car" shared, same idf log 2), no bigram shared -> 10 * (1/2) / 4; mean with 5
    assert got["cider"] == pytest.approx((5.0 + 1.25) / 2) and got["tokenizer"] == "ptb"
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, c in candidates.items()})
    assert got["cider"] == Cider().compute_score(gts, res)[0]
    assert got["meteor"] == Meteor().compute_score(gts, res)[0] and got["meteor_note"] is None
    assert caption_scores({}, {}) == {"meteor": None, "cider": None, "tokenizer": "ptb", "meteor_note": None}
    with pytest.raises(ValueError, match="same images"):
        caption_scores(REFS, {"a": "x"})


def test_without_java_meteor_is_skipped_with_its_reason(monkeypatch):
    import text4seg.gcg_metrics as metrics

    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    got = caption_scores(REFS, {"a": "Red apple.", "b": "a car"})
    assert got["meteor"] is None and got["tokenizer"] == "simple"
    assert got["meteor_note"].startswith("skipped: java not found on the PATH")
    assert got["cider"] == pytest.approx(3.125)
    assert simple_tokenize("A man, holds -- the \"bat\".") == "a man holds the bat"
