"""The restorer: segmenting, marking, decoding, capitalisation, byte-exact output, API and CLI.

Mechanics run on a tiny random-weight bundle (conftest.tiny_full_bundle: every word flagged, so
the random restorer rewrites everywhere); quality checks run on the shipped bundle and are
skipped where it has no restorer.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import degarble
from degarble.bundle import DEFAULT_BUNDLE_DIR, read_manifest
from degarble.edits import apply_edits
from degarble.models.restorer import (
    Restorer,
    SharedCrossAttention,
    _ids_many,
    decoder_prompt,
    decoder_target,
    detokenize,
    encode_source,
    merge_flagged,
    restore_case,
    segments,
    trim_common_words,
)
from degarble.text import words
from degarble.types import Detection, Edit, Restoration, Span

SHIPPED_RESTORER = (DEFAULT_BUNDLE_DIR / "degarble.json").is_file() and read_manifest(DEFAULT_BUNDLE_DIR).has_restorer
needs_shipped = pytest.mark.skipif(not SHIPPED_RESTORER, reason="no trained restorer shipped yet")


# --- pure helpers ----------------------------------------------------------------------------
def test_segments_group_whole_sentences_and_never_cross_paragraphs():
    text = "One two three. Four five six seven.\nEight nine. Ten."
    got = [text[a:b] for a, b in segments(text, max_words=5)]
    assert got == ["One two three.", "Four five six seven.", "Eight nine. Ten."]


def test_segments_cut_an_overlong_sentence_into_runs_of_words():
    text = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12."
    got = [text[a:b] for a, b in segments(text, max_words=5)]
    assert got == ["w1 w2 w3 w4 w5", "w6 w7 w8 w9 w10", "w11 w12."]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["said", "the", "U.S.", "it's", "Mr.", ".", ",", "\n", "\n\n", "“", "—", "12"]),
                max_size=80), st.integers(1, 12))
def test_segments_cover_every_word_exactly_once_in_order(parts, max_words):
    text = " ".join(parts)
    segs = segments(text, max_words)
    assert all(a < b for a, b in segs) and all(b1 <= a2 for (_, b1), (a2, _) in zip(segs, segs[1:]))
    inside = [t for a, b in segs for t in words(text) if a <= t.start and t.end <= b]
    assert inside == words(text)


def test_merge_flagged_joins_runs_across_spaces_only():
    text = "the Common Meeting will vote, he mentioned it"
    toks = words(text)
    flags = [False, True, True, False, True, True, True, False]
    runs = merge_flagged(text, toks, flags)
    assert [text[toks[i].start : toks[j].end] for i, j in runs] == ["Common Meeting", "vote", "he mentioned"]


@pytest.mark.parametrize(
    ("before", "after", "initial", "curly", "expected"),
    [
        ("Common Meeting", "general assembly", False, False, "General Assembly"),  # a name: every word
        ("Home", "house", False, False, "House"),  # one capitalised word inside a sentence: a name
        ("However", "but", True, False, "But"),  # sentence start: the first letter only
        ("Probably the most", "the most", True, False, "The most"),
        ("mentioned", "said", False, False, "said"),
        ("INSTRUCTED", "told", False, False, "TOLD"),  # headline capitals
        ("Motion Convention", "action conference", False, False, "Action Conference"),
        ("Division of Protection", "department of defense", False, False, "Department of Defense"),
        ("it is", "it's", False, True, "it’s"),  # the text's apostrophe style
        ("it is", "it's", False, False, "it's"),
        ("doable", "i think", False, False, "I think"),
        ("anything", "", False, False, ""),
    ],
)
def test_restore_case(before, after, initial, curly, expected):
    assert restore_case(before, after, initial, curly) == expected


@pytest.fixture(scope="module")
def tiny_restorer(tiny_full_bundle):
    # fp32: these tests compare the decoding arithmetic with the model's own forward pass, which
    # int8 (its activation scales follow each call's shapes) and bf16 match only roughly
    return degarble.load(tiny_full_bundle, precision="fp32").restorer


def test_encode_source_wraps_each_span_in_markers(tiny_restorer):
    tok = tiny_restorer.tokenizer
    text = "the minister said the meeting was possible"
    ids = encode_source(tok, text, [(4, 12), (18, 29)])
    assert tok.convert_ids_to_tokens(ids) == [  # span k: sentinel [unused{k+2}], close marker [unused1]
        "[CLS]", "the", "[unused2]", "minister", "[unused1]", "said", "[unused3]", "the", "meeting", "[unused1]",
        "was", "possible", "[SEP]",
    ]
    # the decoder row of span 1: a forced prompt with its sentinel and spun words, then the target
    assert tok.convert_ids_to_tokens(decoder_prompt(tok, 1, "the meeting")) == [
        "[CLS]", "[unused3]", "the", "meeting", "[unused1]",
    ]
    assert tok.convert_ids_to_tokens(decoder_target(tok, "the minister")) == ["the", "minister", "[SEP]"]
    assert tok.convert_ids_to_tokens(decoder_target(tok, "")) == ["[SEP]"]  # a deleted word


def test_token_ids_read_from_the_backend_match_the_tokenizer_call(tiny_restorer):
    tok = tiny_restorer.tokenizer
    strings = ["the General Assembly", "CBS News’s", "  ", "", "face-to-face 12 months", "Ünïcode—dash"]
    want = [ids if s.strip() else [] for s, ids in zip(strings, tok(strings, add_special_tokens=False)["input_ids"])]
    assert _ids_many(tok, strings) == want
    # a backend left with truncation on (by some other caller) is not read directly: same ids, uncut
    long = ["word " * 40]
    tok.backend_tokenizer.enable_truncation(max_length=5)
    try:
        assert len(_ids_many(tok, long)[0]) == 40
    finally:
        tok.backend_tokenizer.no_truncation()


def test_greedy_decoding_of_rows_with_prompts_of_different_lengths(tiny_restorer):
    """Right-padded rows of a batch decode exactly as each row decodes alone."""
    import torch

    from degarble.models.restorer import pad_batch

    r = tiny_restorer
    text = "the minister said the meeting was possible"
    spans = [(4, 12), (18, 29)]  # prompts of 3 and 4 tokens
    together = r.infill([(text, spans)])[0]
    ids, mask = pad_batch([encode_source(r.tokenizer, text, spans)], r.tokenizer.pad_token_id, torch)
    with torch.inference_mode():
        hidden = r.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        with SharedCrossAttention(r.model, hidden) as cross:
            alone = [r._decode_rows(cross, mask, [0], [decoder_prompt(r.tokenizer, j, text[a:b])])[0]
                     for j, (a, b) in enumerate(spans)]
    assert [rep for rep, _, _ in together] == [rep for rep, _, _ in alone]
    for (_, p1, _), (_, p2, _) in zip(together, alone):
        assert 0.0 <= p1 <= 1.0 and p1 == pytest.approx(p2, rel=1e-4, abs=1e-7)


def test_pruning_unlikely_rows_changes_no_edit(tiny_restorer):
    """Rows stopped once below min_score are exactly those that could not have made an edit."""
    import torch

    r = tiny_restorer
    items = [("the minister said the meeting was possible", [(4, 12), (18, 29), (30, 33)]),
             ("officials told reporters on monday", [(0, 9), (10, 14), (15, 24)])]
    saved = r.min_score
    bias = r.model.decoder.cls.predictions.bias
    sep = r.tokenizer.sep_token_id
    try:
        with torch.no_grad():
            bias[sep] += 4.0  # the random model ends its rows early and with varied probabilities
        r.min_score = 0.0
        full = [x for out in r.infill(items) for x in out]
        floor = r.min_score = sorted(p for _, p, _ in full)[len(full) // 2]  # about half survive
        pruned = [x for out in r.infill(items) for x in out]
    finally:
        r.min_score = saved
        with torch.no_grad():
            bias[sep] -= 4.0
    assert floor > 0 and any(rep is not None and p >= floor for rep, p, _ in full)
    assert any(rep is None or p < floor for rep, p, _ in full)
    for (rep, p, _), (rep2, p2, _) in zip(full, pruned):
        if rep is not None and p >= floor:
            assert rep2 == rep and p2 == pytest.approx(p, rel=1e-4)
        else:
            assert rep2 is None or p2 < floor


def test_shared_cross_attention_decodes_as_the_plain_model(tiny_restorer):
    """Decoder states through the per-piece key/value cache equal the model's own forward pass,
    and the model's cross-attention layers are restored afterwards."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    from degarble.models.restorer import pad_batch

    r = tiny_restorer
    pieces = ["the minister said the meeting was possible", "officials told reporters on monday"]
    ids, mask = pad_batch([encode_source(r.tokenizer, t, [(4, 12)]) for t in pieces], r.tokenizer.pad_token_id, torch)
    rows = torch.tensor([1, 0, 1])
    dec = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 0], [2, 3, 0, 0]])
    layers = [(lay.crossattention.self.key, lay.crossattention.self.value) for lay in r.model.decoder.bert.encoder.layer]
    with torch.inference_mode():
        hidden = r.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        want = r.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[rows]), attention_mask=mask[rows],
                       decoder_input_ids=dec).logits
        with SharedCrossAttention(r.model, hidden) as cross:
            got = r.model.decoder.cls(cross.decode(rows, mask, dec))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert [(lay.crossattention.self.key, lay.crossattention.self.value) for lay in r.model.decoder.bert.encoder.layer] == layers

    # training takes the same path: the gradients of the cross-attention projections agree too
    key = r.model.decoder.bert.encoder.layer[0].crossattention.self.key.weight
    grads = []
    for shared in (False, True):
        r.model.zero_grad()
        hidden = r.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        if shared:
            with SharedCrossAttention(r.model, hidden) as cross:
                out = r.model.decoder.cls(cross.decode(rows, mask, dec))
        else:
            out = r.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[rows]), attention_mask=mask[rows],
                          decoder_input_ids=dec).logits
        out.logsumexp(-1).sum().backward()
        grads.append(key.grad.clone())
    r.model.zero_grad()
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    assert grads[0].abs().sum() > 0


def test_cached_decoder_states_equal_the_plain_forward_pass(tiny_restorer):
    """Prompts of different lengths, then single tokens after some rows stopped: every new
    token's state equals the model's own forward pass over that row's whole sequence."""
    import torch

    from degarble.models.restorer import CachedDecoder, pad_batch

    r = tiny_restorer
    pieces = ["the minister said the meeting was possible", "officials told reporters on monday"]
    ids, mask = pad_batch([encode_source(r.tokenizer, t, [(4, 12)]) for t in pieces], r.tokenizer.pad_token_id, torch)
    rows = [1, 0, 1, 0]
    seqs = [[2, 5, 6, 7], [2, 8], [2, 3, 4], [2, 9, 10]]  # prompts, right-padded below
    more = [[11, 12], None, [13, 14], [15, 16]]  # row 1 stops after its prompt

    def plain(row, seq):
        out = r.model.decoder.bert(input_ids=torch.tensor([seq]), encoder_hidden_states=hidden[[row]],
                                   encoder_attention_mask=mask[[row]]).last_hidden_state
        return out[0, -1]

    with torch.inference_mode():
        hidden = r.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        with SharedCrossAttention(r.model, hidden) as cross:
            dec = CachedDecoder(cross, torch.tensor(rows), mask)
            pids, pmask = pad_batch(seqs, r.tokenizer.pad_token_id, torch)
            states = dec.step(pids, torch.arange(pids.shape[1]).expand_as(pids), pmask.bool())
            got = {(i, len(s) - 1): states[i, len(s) - 1] for i, s in enumerate(seqs)}
            alive = [i for i in range(len(seqs)) if more[i]]
            dec.select(torch.tensor(alive))
            for step in range(2):
                toks = torch.tensor([[more[i][step]] for i in alive])
                pos = torch.tensor([[len(seqs[i]) + step] for i in alive])
                out = dec.step(toks, pos, torch.ones(len(alive), 1, dtype=torch.bool))
                got.update({(i, len(seqs[i]) + step): out[k, 0] for k, i in enumerate(alive)})
        for (i, t), state in got.items():
            full = seqs[i] + (more[i] or [])
            torch.testing.assert_close(state, plain(rows[i], full[: t + 1]), rtol=1e-4, atol=1e-5)
    assert len(got) == 4 + 2 * 3


@pytest.mark.parametrize("overhead", [128, 0])
def test_continuations_are_the_teacher_forced_log_probability(tiny_restorer, monkeypatch, overhead):
    """Candidates scored from the prompt's cache (rows repeated, targets of different lengths)
    get the log probability of the model's plain forward pass over prompt and target, whether
    prompts and targets of different lengths go through together (padded) or apart (overhead
    0: one group per length, the caches joined by CachedDecoder.concat)."""
    import functools

    import torch

    from degarble.models import restorer as module
    from degarble.models.restorer import pad_batch

    monkeypatch.setattr(module, "length_groups", functools.partial(module.length_groups, overhead=overhead))
    r = tiny_restorer
    text = "the minister said the meeting was possible"
    spans = [(4, 12), (18, 29)]  # prompts of 3 and 4 tokens
    ids, mask = pad_batch([encode_source(r.tokenizer, text, spans)], r.tokenizer.pad_token_id, torch)
    prompts = [decoder_prompt(r.tokenizer, k, text[a:b]) for k, (a, b) in enumerate(spans)]
    asked = [(1, "the general assembly"), (0, "the meeting"), (0, "said"), (1, ""), (0, "")]
    with torch.inference_mode():
        hidden = r.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        with SharedCrossAttention(r.model, hidden) as cross:
            start = r._prompt(cross, mask, [0, 0], prompts)
            got = r._continuations(start, [k for k, _ in asked], [decoder_target(r.tokenizer, t) for _, t in asked])
    for lp, (k, t) in zip(got, asked):
        assert lp == pytest.approx(_teacher_forced(r, text, spans, t, k), abs=1e-4)
        assert lp < 0


@given(st.lists(st.integers(1, 12), max_size=30), st.integers(0, 40))
@settings(max_examples=200, deadline=None)
def test_length_groups_partition_rows_at_the_least_padded_cost(lengths, overhead):
    from itertools import combinations

    from degarble.models.restorer import length_groups

    groups = length_groups(lengths, overhead)
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(len(lengths)))  # every row once
    assert [lengths[i] for i in flat] == sorted(lengths)  # groups of consecutive lengths
    assert len({lengths[g[-1]] for g in groups}) == len(groups)  # a length is never split across groups

    def cost(gs):
        return sum(len(g) * max(lengths[i] for i in g) + overhead for g in gs)

    # brute force over where to cut the sorted distinct lengths
    distinct = sorted(set(lengths))
    best = min((cost([[i for i in range(len(lengths)) if lo <= lengths[i] <= hi]
                      for lo, hi in zip([distinct[0], *(distinct[c] for c in cuts)],
                                        [*(distinct[c - 1] for c in cuts), distinct[-1]])])
                for n in range(len(distinct)) for cuts in combinations(range(1, len(distinct)), n)),
               default=0)
    assert cost(groups) == best


def test_detokenize_joins_apostrophes_hyphens_and_initials(tiny_restorer):
    tok = tiny_restorer.tokenizer
    ids = tok.convert_tokens_to_ids(["it", "'", "s", "the", "minister", "-", "said", "u", ".", "s", "."])
    assert detokenize(tok, ids) == "it's the minister-said u.s."


# --- edits from model output -------------------------------------------------------------------
def test_edit_keeps_case_drops_kept_spans_and_low_scores(tiny_restorer):
    r = tiny_restorer
    text = "The Common Meeting will just vote. He mentioned it."
    a = text.index("Common")
    e = r._edit(text, a, a + len("Common Meeting"), "general assembly", 0.9, 0)
    assert e == Edit(a, a + 14, "Common Meeting", "General Assembly", 0.9)
    m = text.index("mentioned")
    assert r._edit(text, m, m + 9, "mentioned", 0.99, 0) is None  # kept: a false alarm
    assert r._edit(text, m, m + 9, None, 0.0, 0) is None  # malformed output
    saved, r.min_score = r.min_score, 0.5
    try:
        assert r._edit(text, m, m + 9, "said", 0.3, 0) is None  # not sure enough
    finally:
        r.min_score = saved
    j = text.index("just")
    d = r._edit(text, j, j + 4, "", 0.8, 0)  # a deleted filler takes a space with it
    assert (d.before, d.after) == ("just ", "")
    assert apply_edits(text, [d]) == "The Common Meeting will vote. He mentioned it."


def test_edit_alternatives_are_edits_of_their_own(tiny_restorer):
    """Each alternative gets the text's capitalisation and its own trimmed span, can be applied
    instead of the chosen edit, and neither the span itself nor a copy of the choice is offered."""
    r = tiny_restorer
    text = "The Common Meeting will vote."
    a = text.index("Common")
    alts = [("general meeting", 0.4), ("common meeting", 0.3), ("general assembly", 0.2), ("world body", 0.1)]
    e = r._edit(text, a, a + len("Common Meeting"), "general assembly", 0.9, 0, alts)
    assert e == Edit(a, a + 14, "Common Meeting", "General Assembly", 0.9)
    assert e.alternatives == (Edit(a, a + 6, "Common", "General", 0.4), Edit(a, a + 14, "Common Meeting", "World Body", 0.1))
    assert [apply_edits(text, [x]) for x in e.alternatives] == ["The General Meeting will vote.",
                                                               "The World Body will vote."]
    assert e.to_dict()["alternatives"][0] == {"start": a, "end": a + 6, "before": "Common", "after": "General",
                                              "score": 0.4}
    assert "alternatives" not in r._edit(text, a, a + 14, "general assembly", 0.9, 0).to_dict()



@pytest.mark.parametrize("before,after,part,rest", [
    ("the Common Meeting", "the General Assembly", "Common Meeting", "General Assembly"),
    ("at arms length", "at arm's length", "arms", "arm's"),
    ("really important", "important", "really", ""),  # a deletion
    ("issued functions", "published works", "issued functions", "published works"),  # nothing shared
    ("Voice", "Voice over", "Voice", "Voice over"),  # a word of before always stays
    ("x  y\nz", "x q z", "y", "q"),  # offsets, not re-joined words
])
def test_trim_common_words_leaves_shared_words_out_of_the_edit(before, after, part, rest):
    s, e, a = trim_common_words(before, after)
    assert (before[s:e], a) == (part, rest)


def test_edit_leaves_a_flagged_kept_neighbour_untouched(tiny_restorer):
    r = tiny_restorer
    text = "Then the Common Meeting is really important now."
    a = text.index("the Common")
    e = r._edit(text, a, a + len("the Common Meeting"), "the general assembly", 0.9, 0)
    assert e == Edit(text.index("Common"), text.index(" is"), "Common Meeting", "General Assembly", 0.9)
    k = text.index("really")
    d = r._edit(text, k, k + len("really important"), "important", 0.8, 0)  # a deletion after trimming
    assert (d.before, d.after) == ("really ", "")
    assert apply_edits(text, [e, d]) == "Then the General Assembly is important now."


TEXTS = [
    "The Common Meeting will vote on Monday, the deputy overseas minister instructed state media.",
    "“It’s a doable assembly,” he mentioned.  Double  spaces\tand a tab — and dashes – stay.\n\nA second paragraph "
    "follows here, with the White Home.",
    "",
    "Short.",
    " ".join(["the minister said the meeting was possible and officials agreed"] * 40),  # long: many pieces
]


def test_restore_output_is_built_from_edits_and_untouched_text_is_byte_exact(tiny_full_bundle):
    model = degarble.load(tiny_full_bundle)
    out = model.restore(TEXTS)
    assert len(out) == len(TEXTS)
    for text, res in zip(TEXTS, out):
        assert apply_edits(text, res.edits) == res.text
        prev = -1
        for e in res.edits:
            assert text[e.start : e.end] == e.before and e.start >= prev and 0.0 <= e.score <= 1.0
            prev = e.end
        # outside the edits, the restored text is the input byte for byte
        pos, kept = 0, []
        for e in res.edits:
            kept.append(text[pos : e.start])
            pos = e.end
        kept.append(text[pos:])
        rest = res.text
        for piece in kept:
            assert piece in rest
    assert out[2].text == "" and out[2].edits == []
    with pytest.raises(TypeError):
        model.restore("not a list")


def test_nothing_changes_where_the_detector_flags_nothing(tiny_restorer):
    text = "The Common Meeting will vote on Monday."
    quiet = Detection(0.9, True, [], [{"start": 0, "end": len(text), "spun_score": 0.9, "is_spun": True}])
    clean_para = Detection(0.1, False, [Span(4, 10, 0.9)], [{"start": 0, "end": len(text), "spun_score": 0.1,
                                                              "is_spun": False}])
    out = tiny_restorer.restore([text, text], [quiet, clean_para])
    assert [r.text for r in out] == [text, text] and all(not r.edits for r in out)


def test_only_flagged_spans_are_rewritten(tiny_restorer):
    text = "The Common Meeting will vote on Monday. The minister said so."
    a = text.index("Common")
    det = Detection(0.9, True, [Span(a, a + 14, 0.9)], [{"start": 0, "end": len(text), "spun_score": 0.9, "is_spun": True}])
    res = tiny_restorer.restore([text], [det])[0]
    assert all(e.start >= a and e.end <= a + 15 for e in res.edits)


def test_restorer_batch_method_and_api(tiny_full_bundle):
    one = degarble.restore(TEXTS[0], model=tiny_full_bundle)
    assert one == degarble.load(tiny_full_bundle).restore([TEXTS[0]])[0]
    assert isinstance(Restorer, type)


def test_min_score_replaces_the_calibrated_one_for_a_call(tiny_ranked_bundle, tagged_infill):
    """``restore(min_score=p)`` restores at ``p`` (ranked or greedy), leaving the bundle's restorers
    as they were; the fake model step scores every replacement 0.5."""
    model = degarble.load(tiny_ranked_bundle)
    text = "The deputy overseas minister said so."
    assert model.restore([text]) == [Restoration(text, [])]  # 0.5 < the calibrated 0.9
    low = model.restore([text], min_score=0.45)[0]
    assert low.edits and {e.after.lower() for e in low.edits} == {"ranked"}
    assert model.restore([text], greedy=True, min_score=0.6) == [Restoration(text, [])]  # 0.5 < 0.6
    assert tagged_infill == [({"candidates": 4}, 0.9), ({"candidates": 4}, 0.45), (None, 0.6)]
    assert model.restorer.min_score == 0.9 and model._greedy().min_score == 0.3
    assert degarble.restore(text, model=tiny_ranked_bundle, min_score=0.45) == low
    with pytest.raises(ValueError, match="min_score"):
        model.restore([text], min_score=1.5)


def test_restore_takes_the_callers_detections(tiny_ranked_bundle, tagged_infill):
    """``restore(detections=...)`` restores from detections the caller already has (the HTML page
    shows them too) exactly as from its own; one per text, or a clear error."""
    model = degarble.load(tiny_ranked_bundle)
    texts = ["The deputy overseas minister said so.", "Officials mentioned the firm."]
    detections = model.detect(texts)
    assert model.restore(texts, min_score=0.45, detections=detections) == model.restore(texts, min_score=0.45)
    with pytest.raises(ValueError, match="detections: 1 for 2 texts"):
        model.restore(texts, detections=detections[:1])


def _gated_bundle(root, ranked, gate_min_score):
    """``ranked`` judging no paragraph spun (threshold 1) at min_score 0.45, with a paragraph gate
    that opens every paragraph (threshold 0) to changes of at least ``gate_min_score``."""
    from degarble.bundle import save_bundle

    m = read_manifest(ranked)
    detector = {**{k: v for k, v in m.detector.items() if k != "dir"}, "threshold": 1.0}
    restorer = {**{k: v for k, v in m.restorer.items() if k != "dir"}, "min_score": 0.45,
                "paragraph_gate": {"threshold": 0.0, "min_score": gate_min_score}}
    return save_bundle(root, {"name": "tiny-gated", "detector": detector, "restorer": restorer},
                       {"detector": m.part_dir("detector"), "restorer": m.part_dir("restorer")}).root


def test_paragraph_gate_makes_only_sure_changes_below_the_threshold(tmp_path, tiny_ranked_bundle, tagged_infill):
    """Paragraphs under the detector's threshold but over the gate's are restored, keeping only
    changes of at least the gate's min_score (the fake model step scores every one 0.5); the gate
    is off for greedy restoring and for an explicit threshold. Text outside the edits is kept."""
    texts = ["The deputy overseas minister said so.", "Officials mentioned the firm."]
    loose = degarble.load(_gated_bundle(tmp_path / "loose", tiny_ranked_bundle, 0.4))
    strict = degarble.load(_gated_bundle(tmp_path / "strict", tiny_ranked_bundle, 0.6))
    assert not any(d.is_spun for d in loose.detect(texts))  # the detector's own verdict is unchanged
    out = loose.restore(texts)
    assert any(r.edits for r in out) and all(e.score >= 0.4 for r in out for e in r.edits)
    assert [apply_edits(t, r.edits) for t, r in zip(texts, out)] == [r.text for r in out]
    assert out == loose.restore(texts, threshold=0.0)  # every paragraph open, changes at 0.5 >= 0.45
    assert strict.restore(texts) == [Restoration(t, []) for t in texts]  # 0.5 < the gate's 0.6
    assert strict.restore(texts, threshold=0.0) == out  # an explicit threshold: no gate
    assert strict.restore(texts, greedy=True) == [Restoration(t, []) for t in texts]  # none judged spun


def test_greedy_restore_skips_ranking_at_the_greedy_min_score(tiny_ranked_bundle, tagged_infill):
    """``restore(greedy=True)`` on a bundle with ``rank`` and ``greedy_min_score`` uses a restorer
    without ranking at that min_score (sharing the weights); the default keeps the ranked one."""
    model = degarble.load(tiny_ranked_bundle)
    ranked = model.restorer
    greedy = model._greedy()
    assert ranked.rank == {"candidates": 4} and ranked.min_score == 0.9
    assert greedy.rank is None and greedy.min_score == 0.3 and greedy.model is ranked.model
    assert model._greedy() is greedy  # made once
    text = "The deputy overseas minister said so."
    # the fake model step gives every span a replacement with probability 0.5: under the ranked
    # min_score (0.9) no edit is made, over the greedy one (0.3) every span is replaced
    assert model.restore([text]) == [Restoration(text, [])]
    out = model.restore([text], greedy=True)[0]
    assert out.edits and {e.after.lower() for e in out.edits} == {"greedy"}
    assert tagged_infill == [({"candidates": 4}, 0.9), (None, 0.3)]
    assert model.restorer is ranked and ranked.rank == {"candidates": 4}  # the ranked one is untouched
    assert degarble.restore(text, model=tiny_ranked_bundle, greedy=True) == out


def test_greedy_is_a_no_op_without_ranking(tiny_full_bundle):
    model = degarble.load(tiny_full_bundle)
    assert model.restorer.rank is None and model._greedy() is model.restorer


def test_cli_restore_on_tiny_bundle(tiny_full_bundle, tmp_path, capsys):
    from degarble.cli import main

    inp = tmp_path / "in.jsonl"
    inp.write_text(
        json.dumps({"id": "a", "text": TEXTS[0], "keep": 1}) + "\n"
        + "{not json\n"
        + json.dumps({"id": "c", "text": None}) + "\n",
        encoding="utf-8",
    )
    out, errs = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    code = main(["restore", str(inp), "-o", str(out), "--model", str(tiny_full_bundle), "--errors", str(errs)])
    assert code == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a"] and rows[0]["keep"] == 1
    edits = [Edit(**e) for e in rows[0]["edits"]]
    assert apply_edits(rows[0]["text"], edits) == rows[0]["restored"]
    assert [json.loads(line)["line"] for line in errs.read_text().splitlines()] == [2, 3]
    capsys.readouterr()
    # the diff view lists exactly the edits of the JSON output, one "before → after" line each
    assert main(["restore", str(inp), "--format", "diff", "--model", str(tiny_full_bundle)]) == 1
    shown = capsys.readouterr().out
    n = len(edits)
    assert f": {n} change{'s' if n != 1 else ''}" in shown
    assert shown.count(" → ") == n
    txt = tmp_path / "story.txt"
    txt.write_text(TEXTS[1], encoding="utf-8")
    assert main(["restore", str(txt), "--format", "text", "--model", str(tiny_full_bundle)]) == 0
    assert capsys.readouterr().out.strip() == degarble.load(tiny_full_bundle).restore([TEXTS[1]])[0].text.strip()


# --- the shipped model ----------------------------------------------------------------------------
@needs_shipped
def test_shipped_restorer_brings_spun_news_closer_to_the_original():
    from degarble.score import wer

    originals = [
        "The government said on Tuesday that it would increase spending on schools and hospitals next year.",
        "Police said the man was arrested after a search of his home, and he is expected to appear in court.",
    ]
    spun = [degarble.spin(t, rate="heavy", seed=5).text for t in originals]
    restored = [r.text for r in degarble.load().restore(spun)]
    assert wer(restored, originals) < wer(spun, originals)
    assert degarble.load().restore(originals)[0].text == originals[0]  # clean news stays as it is


@needs_shipped
def test_shipped_bundle_with_restorer_fits_budget():
    size = sum(p.stat().st_size for p in DEFAULT_BUNDLE_DIR.rglob("*") if p.is_file())
    assert size < 120 * 1024 * 1024
    m = read_manifest(DEFAULT_BUNDLE_DIR)
    assert 0.0 <= m.restorer["min_score"] < 1.0 and "restorer_calibration" in m.scores


def _overseas_context(tmp_path, corpus: list[str]):
    """Corpus evidence whose counts are ``corpus`` (three times) and whose inverted tables know one
    spun word: "overseas" <- "abroad" (prior 0.2), "foreign" (0.12), "offshore" (0.1)."""
    from degarble.models.context import (
        INVERSE_FILE,
        ContextScorer,
        NgramCounts,
        read_inverse,
        sequence_keys,
        write_inverse,
    )

    counts = NgramCounts.from_sequences((sequence_keys(s.split()) for s in corpus * 3), 1)
    write_inverse(tmp_path / INVERSE_FILE, {"overseas": [("abroad", 0.2), ("foreign", 0.12), ("offshore", 0.1)]})
    return ContextScorer(counts, read_inverse(tmp_path / INVERSE_FILE), [1.0, 0, 0, 0, 0], 0.0)


def test_candidate_ranking_takes_the_corpus_fit_into_account(tiny_restorer, tmp_path):
    """With ``rank``, the span's candidates (spinner tables read backwards, the span, the greedy
    output) are scored by the model; ``lm_weight`` adds their bigram fit between the neighbours,
    which here (weight 1000 on counts that know only "foreign minister") decides."""
    # the candidates come from the context's copy of the inverted spinner tables
    ctx = _overseas_context(tmp_path, ["the deputy foreign minister said", "a foreign minister met the foreign minister"])
    assert [c for c, _ in ctx.spinner_inverse().candidates("Overseas")] == ["abroad", "foreign", "offshore"]
    text = "The deputy overseas minister said."
    a = text.index("overseas")
    span = [(a, a + len("overseas"))]
    old = (tiny_restorer.rank, tiny_restorer.context)
    try:
        tiny_restorer.rank, tiny_restorer.context = {"candidates": 12, "lm_weight": 1000.0}, ctx
        (rep, score, _), = tiny_restorer.infill([(text, span)])[0]
        assert rep == "foreign" and 0 < score <= 1
        # "likelihood" reports the model's own probability of the winner, as greedy decoding does
        tiny_restorer.rank = {**tiny_restorer.rank, "confidence": "likelihood"}
        (rep, prob, _), = tiny_restorer.infill([(text, span)])[0]
        assert rep == "foreign" and prob == pytest.approx(math.exp(_teacher_forced(tiny_restorer, text, span, "foreign")))
        with pytest.raises(ValueError, match="confidence"):
            tiny_restorer.rank = {**tiny_restorer.rank, "confidence": "loudest"}
        tiny_restorer.rank = {"candidates": 12, "lm_weight": 1000.0}
        tiny_restorer.context = None  # no counts: lm_weight is ignored, the random model decides
        (plain, _, _), = tiny_restorer.infill([(text, span)])[0]
        tiny_restorer.rank = {"candidates": 12, "lm_weight": 0.0}
        assert tiny_restorer.infill([(text, span)])[0][0][0] == plain
    finally:
        tiny_restorer.rank, tiny_restorer.context = old


def test_frequency_weight_chooses_the_candidates_by_how_common_the_original_is(tiny_restorer, tmp_path):
    """``"frequency_weight"`` picks a span's table candidates by log prior + weight x the
    original's unigram log probability (the context's counts), not by the prior alone."""
    ctx = _overseas_context(tmp_path, ["the foreign minister met a foreign envoy"])
    assert ctx.unigram_logprob("foreign") > ctx.unigram_logprob("abroad") and ctx.unigram_logprob("") == 0.0
    old = (tiny_restorer.rank, tiny_restorer.context)
    try:
        tiny_restorer.context = ctx
        chosen = {}
        for freq in (0.0, 1.0):
            tiny_restorer.rank = {"candidates": 1, "frequency_weight": freq}
            (opts,) = tiny_restorer.rank_options(["overseas"], [(None, 0.0)], [("deputy", "minister")])
            chosen[freq] = [(o.text, o.table_prior) for o in opts if not o.keep]
    finally:
        tiny_restorer.rank, tiny_restorer.context = old
    assert chosen == {0.0: [("abroad", 0.2)], 1.0: [("foreign", 0.12)]}


@pytest.mark.parametrize("alternatives, prior_weight", [(0, 10.0), (2, 30.0)])
def test_pruned_candidate_scoring_chooses_as_scoring_everything(tiny_restorer, monkeypatch, alternatives, prior_weight):
    """With "likelihood" confidence, options whose first-token bound cannot beat their span's best
    are not scored; the chosen replacements and their probabilities equal scoring every option.
    With ``alternatives`` the bound keeps the best few options per span, and the runners-up and
    their probabilities equal scoring everything too."""
    from degarble.models.restorer import Restorer

    items = [("the deputy overseas minister instructed state media on monday", [(11, 19), (29, 39)]),
             ("officials said the common meeting will vote", [(0, 9), (18, 32), (38, 42)]),
             ("he mentioned that the big firm is quite possible", [(3, 12), (22, 30), (34, 48)])]
    real = Restorer._option_logps
    skipped = []

    def forced(self, start, greedy, options, exhaustive, top=1):
        out = real(self, start, greedy, options, exhaustive or forced.everything, top)
        skipped.append(sum(lp is None for lp in out))
        return out

    monkeypatch.setattr(Restorer, "_option_logps", forced)
    old = tiny_restorer.rank
    try:
        # the random model gives every token about the same probability: a heavy prior weight
        # spreads the options apart, so that bounds can rule some out (more weight for more kept)
        tiny_restorer.rank = {"candidates": 24, "prior_weight": prior_weight, "confidence": "likelihood"}
        r = tiny_restorer.using(alternatives=alternatives)
        forced.everything = True
        everything = r.infill(items)
        forced.everything = False
        pruned = r.infill(items)
    finally:
        tiny_restorer.rank = old
    assert skipped[0] == 0 and skipped[1] > 0  # the bound did skip options
    flat = [x for out in everything for x in out]
    assert all(len(alts) <= alternatives for _, _, alts in flat)
    assert sum(len(alts) == alternatives for _, _, alts in flat) >= 3
    for out, ref in zip(pruned, everything):
        for (rep, p, alts), (rep2, p2, alts2) in zip(out, ref):
            assert rep == rep2 and p == pytest.approx(p2, rel=1e-5)
            assert [a for a, _ in alts] == [a for a, _ in alts2]
            assert [q for _, q in alts] == pytest.approx([q for _, q in alts2], rel=1e-5)


def test_alternatives_are_the_runners_up_and_leave_the_choice_alone(tiny_restorer):
    """With "share" confidence every option is scored: the alternatives are the options with the
    next-largest shares, best first, never the span itself or the winner, and asking for them
    changes neither the winner nor its probability."""
    items = [("the deputy overseas minister instructed state media on monday", [(11, 19), (29, 39)])]
    old = tiny_restorer.rank
    try:
        tiny_restorer.rank = {"candidates": 12, "prior_weight": 3.0}
        plain = tiny_restorer.infill(items)[0]
        with_alts = tiny_restorer.using(alternatives=3).infill(items)[0]
    finally:
        tiny_restorer.rank = old
    text, spans = items[0]
    for (rep, p, none), (rep2, p2, alts), (a, b) in zip(plain, with_alts, spans):
        assert none == [] and rep == rep2 and p == pytest.approx(p2)
        assert 1 <= len(alts) <= 3
        texts = [t for t, _ in alts]
        assert len(set(texts)) == len(texts) and rep not in texts and text[a:b] not in texts
        shares = [q for _, q in alts]
        assert shares == sorted(shares, reverse=True) and max(shares) <= p and sum(shares) + p <= 1 + 1e-9


def test_alternatives_need_ranking(tiny_restorer, tiny_ranked_bundle):
    with pytest.raises(ValueError, match="candidate ranking"):
        tiny_restorer.greedy().using(alternatives=2)
    model = degarble.load(tiny_ranked_bundle)
    with pytest.raises(ValueError, match="at least|>= 0"):
        model.restorer.using(alternatives=-1)
    with pytest.raises(ValueError, match="greedy"):
        model.restore(["The deputy overseas minister said so."], greedy=True, alternatives=2)
    assert model.restorer.using(alternatives=0).alternatives == 0 and model.restorer.alternatives == 0


def _teacher_forced(r, text, spans, target, k: int = 0) -> float:
    """log P(target | the prompt of span ``k``), by the plain forward pass."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    from degarble.models.restorer import pad_batch

    ids, mask = pad_batch([encode_source(r.tokenizer, text, spans)], r.tokenizer.pad_token_id, torch)
    prompt = decoder_prompt(r.tokenizer, k, text[spans[k][0] : spans[k][1]])
    t = decoder_target(r.tokenizer, target)
    with torch.inference_mode():
        hidden = r.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = r.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=mask,
                         decoder_input_ids=torch.tensor([(prompt + t)[:-1]])).logits
    return torch.log_softmax(logits.float(), -1)[0, len(prompt) - 1 + torch.arange(len(t)), torch.tensor(t)].sum().item()


@needs_shipped
def test_shipped_inverse_table_matches_the_spinner_tables():
    """The restorer's candidates come from the detector's copy of the inverted spinner tables;
    it must be the table the bundled spinner tables give now (priors to 4 digits, at most 60),
    or the bundle is stale and ``training/fit_context.py`` must be rerun."""
    import random

    from degarble.models.context import ContextScorer
    from degarble.spin.inverse import load_inverse

    m = read_manifest(DEFAULT_BUNDLE_DIR)
    ctx = ContextScorer.from_dir(m.part_dir("detector"), m.detector["context"])
    table = load_inverse().table
    assert set(ctx.inverse) == {k for k, v in table.items() if any(c for c, _ in v) and "\t" not in k}
    shipped = ctx.spinner_inverse()  # what the restorer reads its candidates from
    for key in random.Random(0).sample(sorted(ctx.inverse), 2000):
        assert shipped.lookup(key) == [(c, float(f"{p:.4g}")) for c, p in table[key] if c][:60], key


def test_rank_option_prior_and_confidence_features():
    """The prior the ranking weighs, and the features "learned" confidence reads, by definition."""
    from degarble.models.restorer import CONFIDENCE_FEATURES, RankOption, confidence_features, logistic

    span = RankOption("common meeting", keep=True, fit=-12.0)
    table = RankOption("general assembly", table_prior=0.2, fit=-8.0)
    greedy = RankOption("general session", generated=True, fit=-9.5)
    assert span.prior(0.4, 0.01) == 0.4 and table.prior(0.4, 0.01) == 0.2 and greedy.prior(0.4, 0.01) == 0.01
    assert RankOption("x").prior(0.4, 0.01) == 1e-6  # floored, for the log
    f = confidence_features(table, span, 7, math.log(0.5), 0.4, 0.01)
    assert set(f) == set(CONFIDENCE_FEATURES)
    assert f["likelihood"] == pytest.approx(0.5) and f["log_prior"] == pytest.approx(math.log(0.2))
    assert f["fit_gain"] == 4.0 and f["generated"] == 0.0 and f["from_tables"] == 1.0
    assert f["span_words"] == 2.0 and f["words"] == 2.0 and f["options"] == 7.0
    assert confidence_features(greedy, span, 1, -0.1, 0.4, 0.01)["generated"] == 1.0
    assert logistic({"bias": 0.0}, f) == 0.5
    assert logistic({"bias": -1.0, "likelihood": 2.0}, f) == pytest.approx(0.5)  # -1 + 2 x 0.5 = 0
    assert logistic({"bias": 1e6}, f) == pytest.approx(1.0)  # clipped, no overflow


def test_rank_options_order_and_flags(tiny_restorer):
    """The span itself first, then the tables' candidates, then the greedy output (one option per
    compare key: a greedy output that is also a candidate is flagged on that option)."""
    from degarble.models.restorer import detokenize

    old = tiny_restorer.rank
    try:
        tiny_restorer.rank = {"candidates": 3}
        ids = tiny_restorer.tokenizer("zebra", add_special_tokens=False)["input_ids"]
        (opts,) = tiny_restorer.rank_options(["Overseas"], [(ids, -1.0)], [("deputy", "minister")])
    finally:
        tiny_restorer.rank = old
    assert opts[0].text == "overseas" and opts[0].keep and not opts[0].generated
    assert 1 <= sum(o.table_prior > 0 for o in opts) <= 3
    assert opts[-1].generated and opts[-1].text == detokenize(tiny_restorer.tokenizer, ids).lower()
    assert len({o.text for o in opts}) == len(opts)


def test_learned_confidence_gates_edits(tiny_restorer):
    """"learned" confidence reports the logistic model's probability (here a constant: the bias
    alone), and needs its weights."""
    text = "The deputy overseas minister said."
    a = text.index("overseas")
    span = [(a, a + len("overseas"))]
    old = tiny_restorer.rank
    try:
        for bias in (3.0, -3.0):
            tiny_restorer.rank = {"candidates": 12, "confidence": "learned", "confidence_weights": {"bias": bias}}
            (rep, conf, _), = tiny_restorer.infill([(text, span)])[0]
            assert conf == pytest.approx(1 / (1 + math.exp(-bias)))
        with pytest.raises(ValueError, match="confidence_weights"):  # checked when set (a bundle: at load)
            tiny_restorer.rank = {"candidates": 12, "confidence": "learned"}
        with pytest.raises(ValueError, match='expected "share", "likelihood" or "learned"'):
            tiny_restorer.rank = {"candidates": 12, "confidence": "surest"}
    finally:
        tiny_restorer.rank = old


def test_a_restore_call_leaves_no_reference_cycles(tiny_ranked_bundle):
    """Model.detect and Model.restore pause the cyclic collector (degarble.model._collector_paused);
    that costs no memory only while a call makes no reference cycles, which this checks."""
    import gc

    model = degarble.load(tiny_ranked_bundle, precision="fp32")
    texts = ["The Common Meeting will vote on the deputy overseas minister's plan.", "", "Nothing to see here."]
    model.restore(texts)  # first calls fill lazy caches
    gc.collect()
    model.restore(texts)
    model.detect(texts)
    assert gc.collect() == 0
