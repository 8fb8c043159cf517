"""Sentiment per company (model/target.py): the features of a mention, the untrained head is the headline's
pooling, one company in a text is the headline's result exactly, bad targets are refused with one clear reason, and
the shipped head's quality on the judged fixture is recorded (bench/entity_sentiment.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.network import LABELS
from model.target import (
    BOUNDARIES,
    HEAD_FILE,
    MAX_DISTANCE,
    TargetError,
    TargetPooling,
    TargetScorer,
    boundary_ids,
    check_span,
    features,
    find_target,
)


@pytest.fixture(scope="module")
def targets(scorer_fp32):
    from cli.model import linked_spans

    return TargetScorer(scorer=scorer_fp32, linker=linked_spans)


def test_features_place_every_piece_relative_to_the_mention(tokenizer):
    text = "Pfizer wins, while Moderna falls"
    enc = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
    moderna = (text.index("Moderna"), text.index("Moderna") + 7)
    f = features(offsets, ids, moderna, [(0, 6)], boundary_ids(tokenizer))
    pieces = tokenizer.convert_ids_to_tokens(ids)
    inside = [p for p, m in zip(pieces, f.mention, strict=True) if m]
    assert "".join(inside).replace("#", "") == "moderna"
    assert "".join(p for p, o in zip(pieces, f.other, strict=True) if o).replace("#", "") == "pfizer"
    assert f.distance[f.mention].tolist() == [MAX_DISTANCE] * int(f.mention.sum())
    wins = pieces.index("wins")
    assert f.distance[wins] < MAX_DISTANCE < f.distance[pieces.index("falls")]
    # "wins" is across the comma and "while" from Moderna; "falls" is in Moderna's own clause.
    crossed = {BOUNDARIES[k] for k in np.flatnonzero(f.crossed[wins][:-1])}
    assert crossed == {",", "while"} and f.crossed[wins][-1] == 0  # Pfizer lies before "wins", not between
    assert f.crossed[0][-1] == 1  # [CLS] has Pfizer between it and Moderna
    assert not f.crossed[pieces.index("falls")].any()


def test_an_untrained_head_pools_exactly_as_the_headline(scorer_fp32, tokenizer):
    net = scorer_fp32.net
    head = TargetPooling(net.pool.query)
    text = "Pfizer wins as Moderna slumps"
    enc = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    with torch.inference_mode():
        states = net.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        pool = scorer_fp32.rule.mask(enc["input_ids"], enc["attention_mask"])
        want, want_w = net.pool(states, pool)
        f = features([tuple(o) for o in enc["offset_mapping"][0].tolist()], enc["input_ids"][0].tolist(), (15, 22),
                     [(0, 6)], boundary_ids(tokenizer))  # fmt: skip
        t = lambda a: torch.from_numpy(a).unsqueeze(0)  # noqa: E731
        got, got_w = head(states, pool, t(f.mention), t(f.other), t(f.distance), t(f.crossed))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-6)


def test_one_company_in_the_text_is_the_headline_result_exactly(targets, scorer_fp32):
    text = "Nokia shares plunge after profit warning"
    r = targets.score(text, find_target(text, "Nokia"))
    headline = scorer_fp32.score([text])[0]
    assert not r.targeted and r.others == []
    assert (r.label, r.probabilities, r.score) == (headline.label, headline.probabilities, headline.score)
    assert [(a.word, a.weight) for a in r.attributions] == [(a.word, a.weight) for a in headline.attributions]


def test_two_companies_are_scored_each_for_itself_with_the_words_it_used(targets):
    text = "Pfizer wins as Moderna slumps"
    (pfizer, moderna) = targets.score_mentions([text], [[(0, 6), (15, 22)]])[0]
    for r, name in ((pfizer, "Pfizer"), (moderna, "Moderna")):
        assert r.targeted and r.target == name and r.label in LABELS
        assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.score == pytest.approx(r.probabilities["positive"] - r.probabilities["negative"])
        assert r.attributions and all(text[a.start : a.end] == a.word for a in r.attributions)
        assert [a.rank for a in r.attributions] == list(range(1, len(r.attributions) + 1))
    assert pfizer.probabilities != moderna.probabilities  # each company's own pooling
    # the linker finds the other company when none is given
    assert targets.score(text, (15, 22)).others == [(0, 6)]


def test_a_mention_past_the_models_word_pieces_keeps_the_headline_result_alone(targets):
    text = "Apple rises " + "and more " * 150 + "while Nokia falls"
    far = (text.index("Nokia"), text.index("Nokia") + 5)
    ((apple, nokia),) = targets.score_mentions([text], [[(0, 5), far]])
    assert apple is not None and apple.targeted and nokia is None  # the other company is still scored
    with pytest.raises(TargetError, match=f"the span {far[0]}:{far[1]} lies past the 128 word-pieces"):
        targets.score(text, far, others=[(0, 5)])


def test_a_companys_result_does_not_depend_on_the_other_texts_of_the_call(targets):
    text = "Pfizer wins as Moderna slumps"
    alone = targets.score_mentions([text], [[(0, 6), (15, 22)]])[0]
    long = "Apple and Samsung report results while Nokia and Ericsson cut jobs " * 4
    beside = targets.score_mentions([long, text], [[(0, 5), (10, 17)], [(0, 6), (15, 22)]])[1]
    assert [r.probabilities for r in alone] == [r.probabilities for r in beside]
    assert [r.attributions for r in alone] == [r.attributions for r in beside]


def test_company_words_are_merged_as_the_headlines_are(targets, scorer_fp32):
    text = "Nokia's profit jumps 5.5% while $ERIC slides"
    (nokia, _) = targets.score_mentions([text], [[(0, 5), (text.index("$ERIC") + 1, text.index("$ERIC") + 5)]])[0]
    headline = {a.word for a in scorer_fp32.score([text], top_k=10)[0].attributions}
    words = [a.word for a in nokia.attributions]
    assert len(words) == len(set(words)) and set(words) <= headline  # whole words, each once, as stored for headlines


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: find_target("Pfizer wins", ""), "the target is empty"),
        (lambda: find_target("Pfizer wins", "  "), "the target is empty"),
        (lambda: find_target("Pfizer wins", "Moderna"), "the target 'Moderna' does not occur in the text"),
        (lambda: find_target("Pfizerwins", "Pfizer"), "does not occur"),  # whole words only
        (lambda: check_span("Pfizer wins", (4, 40)), "the span 4:40 is outside the text (0:11)"),
        (lambda: check_span("Pfizer wins", (-1, 3)), "outside the text"),
        (lambda: check_span("Pfizer wins", (6, 7)), "the span 6:7 holds no word"),
    ],
)
def test_bad_targets_are_refused_with_one_clear_reason(call, message):
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_a_checkpoint_without_a_head_says_how_to_train_one(tiny_checkpoint):
    from model.checkpoints import CheckpointError

    assert not (tiny_checkpoint / HEAD_FILE).exists()
    with pytest.raises(CheckpointError, match="no targeted head"):
        TargetScorer(tiny_checkpoint)


def test_the_same_company_named_twice_is_one_company(targets, scorer_fp32):
    text = "Apple beats estimates as Apple shares rise"
    r = targets.score(text, (0, 5))
    assert not r.targeted and r.probabilities == scorer_fp32.score([text])[0].probabilities
    # the other companies are one span per other ticker, the target's own ticker left out
    assert targets.others("Apple sues Samsung; Samsung and Apple settle", (0, 5)) == [(11, 18)]
