"""Distillation and the content-word pooling rule (issue 18, points 2 and 5), on tiny random networks.

The teacher's soft labels are written, read back and used: a student that sees only soft labels moves toward them;
the loss mixes gold and teacher where both exist; the recipe runs end to end from a soft-label file. The pooling rule
keeps function words and punctuation out of the decision and therefore out of the stored words.
"""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from model.data import Encoded
from model.distill import SoftLabelError, label_with_teacher, read_soft_labels, text_hash
from model.network import FUNCTION_WORDS, PoolingRule, SentimentNet
from model.scorer import Scorer
from model.train import TrainConfig, save_checkpoint, train, training_loss
from tests.conftest import tiny_config


def content_config(tokenizer, **overrides):
    return tiny_config(tokenizer, pool_skip=FUNCTION_WORDS, pool_skip_punctuation=True, **overrides)


def pooled_tokens(tokenizer, rule, text: str) -> list[str]:
    enc = tokenizer([text], return_tensors="pt")
    mask = rule.mask(enc["input_ids"], enc["attention_mask"])[0]
    return [t for t, m in zip(tokenizer.convert_ids_to_tokens(enc["input_ids"][0]), mask, strict=True) if m]


def test_the_rule_pools_content_words_only(tokenizer):
    rule = PoolingRule(tokenizer, content_config(tokenizer))
    assert pooled_tokens(tokenizer, rule, "The profit of Nokia rose, as expected, to $5m!") == [
        "profit", "nokia", "rose", "expected", "5", "##m",
    ]  # fmt: skip
    # direction and comparison words stay: they carry the news
    assert pooled_tokens(tokenizer, rule, "Profit falls less than feared, not up") == [
        "profit", "falls", "less", "than", "feared", "not", "up",
    ]  # fmt: skip
    # a text of function words only still gets a decision: it pools its real tokens
    assert pooled_tokens(tokenizer, rule, "It is what it is.") == ["it", "is", "what", "it", "is", "."]


def test_a_skipped_word_counts_only_as_a_whole_word(tokenizer):
    config = tiny_config(tokenizer, pool_skip=("the",))
    rule = PoolingRule(tokenizer, config)
    pieces = tokenizer.tokenize("thebaud")
    assert pieces[0] == "the" and pieces[1].startswith("##")  # the tokenizer splits it so
    assert pooled_tokens(tokenizer, rule, "the thebaud") == pieces


def test_checkpoints_before_the_rule_pool_every_real_piece(tokenizer):
    rule = PoolingRule(tokenizer, tiny_config(tokenizer))
    enc = tokenizer(
        ["The profit, as expected", "Up"], padding=True, return_tensors="pt", return_special_tokens_mask=True
    )
    before = (enc["special_tokens_mask"] == 0) & enc["attention_mask"].bool()
    assert torch.equal(rule.mask(enc["input_ids"], enc["attention_mask"]), before)


def test_stored_words_are_content_words_and_carry_the_whole_decision(tokenizer, tmp_path):
    torch.manual_seed(0)
    net = SentimentNet(content_config(tokenizer, max_length=24))
    _, path = save_checkpoint(net, tokenizer, tmp_path, "tiny-content")
    texts = ["The shares of the company rose to a record as it beat the forecast", "And the, of; to!"]
    results = Scorer(path, device="cpu", precision="fp32").score(texts, top_k=50)
    words = [a.word.lower() for a in results[0].attributions]
    assert words and not set(words) & set(FUNCTION_WORDS)
    assert abs(sum(a.weight for a in results[0].attributions) - 1) < 1e-4  # nothing pooled was left unstored
    assert [a.word for a in results[1].attributions]  # all function words: still explained


def test_the_loss_mixes_gold_and_teacher_and_uses_soft_labels_alone():
    cfg = TrainConfig(distill_weight=0.25)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, -100, 1])
    soft = torch.tensor([[0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.0, 0.0, 0.0]])
    has = torch.tensor([True, True, False])
    log_p = torch.log_softmax(logits, -1)
    ce = -log_p[[0, 2], [0, 1]]
    kl = (soft[:2] * (soft[:2].log() - log_p[:2])).sum(-1)
    expected = ((0.75 * ce[0] + 0.25 * kl[0]) + kl[1] + ce[1]) / 3
    assert torch.isclose(training_loss(logits, labels, soft, has, None, cfg), expected)
    # a batch without any gold label is no NaN
    only_soft = training_loss(logits[1:2], labels[1:2], soft[1:2], has[1:2], None, cfg)
    assert torch.isfinite(only_soft) and torch.isclose(only_soft, kl[1])


def test_a_student_learns_from_soft_labels_alone(tokenizer):
    """No gold label at all: the student's predictions move to the teacher's."""
    torch.manual_seed(0)
    net = SentimentNet(tiny_config(tokenizer, max_length=24))
    texts = ["Shares jump after record profit", "Profit warning sends shares down", "Company holds annual meeting"]
    teacher = [[0.05, 0.05, 0.9], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]
    data = Encoded(tokenizer, texts, [-100] * 3, 24, soft=teacher)
    batch = data.collate([0, 1, 2])
    labels, soft, has = batch.pop("labels"), batch.pop("soft_targets"), batch.pop("soft_mask")
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = training_loss(net(**batch).logits, labels, soft, has, None, TrainConfig())
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    net.eval()
    assert net(**batch).logits.argmax(-1).tolist() == [2, 0, 1]


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory, tokenizer):
    torch.manual_seed(1)
    net = SentimentNet(tiny_config(tokenizer, max_length=24))
    _, path = save_checkpoint(net, tokenizer, tmp_path_factory.mktemp("teacher"), "tiny-teacher")
    return path


@pytest.fixture(scope="module")
def soft_file(tiny_teacher, shared_data, tmp_path_factory):
    return label_with_teacher(tiny_teacher, shared_data, tmp_path_factory.mktemp("soft"), max_news=300, log=print)


def test_soft_labels_are_written_with_their_record_and_read_back(soft_file, tiny_teacher):
    labels, record = read_soft_labels(soft_file)
    assert record["teacher"] == tiny_teacher.name and soft_file.name == f"{tiny_teacher.name}.csv.gz"
    assert record["counts"]["news"] == 300 and record["counts"]["phrasebank"] > 3000
    assert {"twitter", "fiqa", "news"} <= {s for s, _ in labels.values()}
    assert all(abs(sum(p) - 1) < 2e-3 for _, p in labels.values())
    assert len(record["news_bias"]) == 3 and record["news_bias"][1] == 0.0
    assert set(record["indomain_val"]) == {"teacher", "teacher_with_news_bias"}
    assert set(record["convention_bias"]) == {"phrasebank", "twitter", "fiqa", "indomain"}
    assert record["indomain_val"]["teacher"]["n"] == 320


def test_no_in_domain_or_held_out_text_is_soft_labelled(soft_file, shared_data):
    from model.data import make_splits
    from model.distill import indomain_rows

    labels, _ = read_soft_labels(soft_file)
    held = [r["text"] for r in indomain_rows()]
    held += [e.text for parts in make_splits(shared_data).values() for p in ("val", "test") for e in parts[p]]
    assert not {text_hash(t) for t in held} & set(labels)


def test_a_changed_or_malformed_soft_label_file_is_refused(soft_file, tmp_path):
    copy = tmp_path / soft_file.name
    with gzip.open(soft_file, "rt") as fh:
        body = fh.read()
    with gzip.open(copy, "wt") as fh:
        fh.write(body.replace("0.", "0.9", 1))
    (tmp_path / soft_file.name.replace(".csv.gz", ".json")).write_text(
        soft_file.with_suffix("").with_suffix(".json").read_text()
    )
    with pytest.raises(SoftLabelError, match="sha256 differs"):
        read_soft_labels(copy)
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as fh:
        fh.write("key,set,p_negative,p_neutral,p_positive\nabc,news,0.5,0.5,0.5\n")
    with pytest.raises(SoftLabelError, match="line 2 holds no probability distribution"):
        read_soft_labels(bad)
    with pytest.raises(SoftLabelError, match="no such soft-label file"):
        read_soft_labels(tmp_path / "missing.csv.gz")


def test_the_recipe_distills_from_a_soft_label_file(soft_file, tokenizer, tmp_path, shared_data):
    from transformers import BertConfig, BertModel

    encoder_dir = tmp_path / "tiny-bert"
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(cfg, add_pooling_layer=False).save_pretrained(encoder_dir)
    tokenizer.save_pretrained(encoder_dir)
    path = train(
        TrainConfig(
            data_dir=str(shared_data),
            out_dir=str(tmp_path / "out"),
            encoder_dir=str(encoder_dir),
            name="tiny-student",
            epochs=1,
            batch_size=16,
            lr=1e-3,
            max_length=32,
            max_train=64,
            evaluate_paths=False,
            evals_per_epoch=1,
            device="cpu",
            soft_labels=str(soft_file),
            max_news=100,
            pool_content_words=True,
            indomain_val=True,
            align_rollout=1.0,
        ),  # fmt: skip
        log=lambda _: None,
    )
    card = json.loads((path / "card.json").read_text())
    distilled = card["data"]["distillation"]
    assert distilled["news_headlines"] == 100 and distilled["teacher"] == soft_file.name.removesuffix(".csv.gz")
    assert distilled["labelled_with_soft"] == 64
    assert card["data"]["indomain_val"] == 320 and "indomain" in card["history"][0]["val_macro_f1"]
    assert (path / "splits" / "indomain_test.csv").is_file()
    config = json.loads((path / "config.json").read_text())
    assert config["pool_skip_punctuation"] and "the" in config["pool_skip"]


def test_the_card_counts_function_words_among_stored_words_and_sets_models_side_by_side(tokenizer, tmp_path):
    from model.card import function_word_share, render_markdown, side_by_side

    torch.manual_seed(0)
    texts = ["The shares of the company rose to a record as it beat the forecast", "Profit is up for the year"]
    paths = {}
    for name, config in (("all", tiny_config(tokenizer, max_length=24)), ("content", content_config(tokenizer))):
        _, paths[name] = save_checkpoint(SentimentNet(config), tokenizer, tmp_path, name)
    before = function_word_share(Scorer(paths["all"], device="cpu", precision="fp32"), texts, k=5)
    after = function_word_share(Scorer(paths["content"], device="cpu", precision="fp32"), texts, k=5)
    assert before["words"] == 10 and after["words"] == 8  # "Profit is up for the year": 3 content words
    assert before["function_words"] > 0 and after["function_words"] == 0 and after["share"] == 0.0

    def card(acc):
        return {"metrics": {"test": {"fp32": {"twitter": {"accuracy": acc, "macro_f1": acc - 0.1}}}}}

    table = side_by_side({"teacher": card(0.9), "old": card(0.8), "new": card(0.85)})
    assert table["columns"] == ["teacher", "old", "new"]
    assert table["rows"]["twitter"]["new"] == {"accuracy": 0.85, "macro_f1": 0.75}
    from model.checkpoints import default_checkpoint, read_card

    shipped = read_card(default_checkpoint()) | {"side_by_side": table}
    shipped["data"] = shipped["data"] | {
        "distillation": {"teacher": "mpnet-teacher-x", "soft_labels": "mpnet-teacher-x.csv.gz",
                         "soft_labels_sha256": "ab" * 32, "labelled_with_soft": 5, "news_headlines": 7,
                         "distill_weight": 0.5, "news_bias": [0.1, 0.0, 0.2], "teacher_indomain_val": {}},
    }  # fmt: skip
    page = render_markdown(shipped)
    assert "| twitter | 0.900 / 0.800 | 0.800 / 0.700 | 0.850 / 0.750 |" in page
    assert "Teacher `mpnet-teacher-x`" in page and "7 news_stream headlines" in page


def test_the_explainer_pools_what_the_scorer_pools(tokenizer, tmp_path):
    """On a content-word checkpoint, `finsent model explain --method pooling` shows the stored words and the same
    decision: the explainer builds its mask with the scorer's rule."""
    from model.explain import Explainer

    torch.manual_seed(0)
    _, path = save_checkpoint(SentimentNet(content_config(tokenizer, max_length=24)), tokenizer, tmp_path, "tiny-c")
    explainer = Explainer(path)
    text = "The shares of the company rose to a record as it beat the forecast"
    stored = explainer.scorer.score([text], top_k=5)[0]
    shown = explainer.explain(text, method="pooling", top_k=5)
    assert [(a.word, a.start) for a in stored.attributions] == [(a.word, a.start) for a in shown.attributions]
    assert all(abs(stored.probabilities[k] - shown.probabilities[k]) < 1e-5 for k in stored.probabilities)
    # rollout is read out through the pooling weights: only poolable words get relevance (Integrated Gradients
    # credits every input embedding, function words included: the encoder reads them as context)
    words = {w.lower() for w, weight, _, _ in explainer.words(text, "rollout") if weight != 0}
    assert words and not words & set(FUNCTION_WORDS)
