"""Always-valid and faster descriptor generation: grammar-constrained decoding and lossless speed-ups.

Decoding modes (:data:`text4seg.options.DECODING_MODES`; ``Segmenter.from_pretrained(..., decoding=...)``,
``text4seg segment --decoding``):

- ``"plain"``: transformers' greedy ``generate``; the answer may be malformed (decoding then repairs it).
- ``"constrained"``: the same ``generate`` with a logits processor that allows, inside ``<seg>...</seg>``, only
  tokens keeping the text a valid prefix of a descriptor of the model's grid (labels from the allowed set,
  counts summing to W in every row, exactly H rows, then ``</seg>`` and the end token). Every answer decodes
  with zero repairs. One forward pass per token.
- ``"fast"`` (default): the same tokens as ``"constrained"`` in far fewer forward passes: one vision pass per
  image, the prompt prefix shared by all queries about an image, batched rows, and drafts (the previous row's
  tokens, tokens the grammar forces, n-gram look-up) verified in one pass each (:mod:`.fast`). Models the fast
  loop does not support run as ``"constrained"``.
- ``"fast-unconstrained"``: the tokens of ``"plain"`` with the speed-ups of ``"fast"`` (drafts verified, no
  grammar).

Modules: :mod:`.generation` (:class:`GeneratedText`, the :class:`GenerationBackend` protocol), :mod:`.backend`
(:class:`HFGenerationBackend`: a transformers model answering prompts in any mode), :mod:`.decoder`
(:class:`DescriptorDecoder`: the grammar modes for one model), :mod:`.hf` (inputs, plain and constrained
``generate``), :mod:`.fast`, :mod:`.drafts`, :mod:`.grammar`, :mod:`.vocab`, :mod:`.labels`. Names are imported on
first use, so ``import text4seg.decoding`` does not import torch.

Why an own automaton and not xgrammar / llguidance / outlines-core (all on PyPI; per their documentation
regex/CFG engines that take a Hugging Face tokenizer and build token masks on CPU): (1) the row constraint "run
counts sum to exactly W" has no compact regular form: a grammar needs one rule per (remaining cells, count)
pair, O(W^2) alternatives per row (x labels for the "adjacent runs differ" rule), compiled anew for every label
set, and the label set changes with every query (the expression is the label); (2) the drafts need the grid row
and column at which each token starts, which a generic matcher does not expose; (3) one native dependency less
to keep in step with transformers. The descriptor grammar is a ~200-line byte automaton (:mod:`.grammar`); walking it
jointly with a trie of the vocabulary's token bytes gives each state's allowed tokens (:mod:`.vocab`), cached
per equivalent state, so after the first rows a step costs a dictionary look-up (microseconds).

Which labels are allowed: the caller's ``labels`` or, from the prompt (:func:`allowed_labels`), the fixed
foreground word or the referring expression, the listed class names of a semantic prompt, plus the background;
free-form instructions with sentence labels allow any clean label. A grounded-caption request (GCG,
:func:`grounded_prompt`) gets :class:`GroundedConstraint` (:mod:`.caption`): a marked caption, then a descriptor
whose labels are exactly the caption's phrases.
"""

from __future__ import annotations

from text4seg._lazy import lazy_exports
from text4seg.options import DECODING_MODES as DECODING_MODES

_LAZY = {
    "GeneratedText": "generation",
    "GenerationBackend": "generation",
    "HFGenerationBackend": "backend",
    "DescriptorDecoder": "decoder",
    "DECODER_MODES": "decoder",
    "DescriptorGrammar": "grammar",
    "Drafter": "drafts",
    "TokenConstraint": "vocab",
    "TokenVocab": "vocab",
    "token_constraint": "vocab",
    "token_vocab": "vocab",
    "allowed_labels": "labels",
    "grounded_prompt": "labels",
    "CaptionGrammar": "caption",
    "GroundedConstraint": "caption",
    "grounded_constraint": "caption",
}

__getattr__, __dir__, _exported = lazy_exports(__name__, _LAZY)
__all__ = sorted([*_exported, "DECODING_MODES"])
