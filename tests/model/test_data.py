from model.data import evaluation_sets, load_phrasebank, make_splits, text_key


def test_splits_are_deterministic_and_leak_free(shared_data):
    a = make_splits(shared_data, seed=13)
    b = make_splits(shared_data, seed=13)
    texts_a = {k: [e.text for e in v["test"]] for k, v in a.items()}
    texts_b = {k: [e.text for e in v["test"]] for k, v in b.items()}
    assert texts_a == texts_b
    test_keys = {text_key(e.text) for s in a.values() for e in s["test"]}
    val_keys = {text_key(e.text) for s in a.values() for e in s["val"]}
    train_keys = {text_key(e.text) for s in a.values() for e in s["train"]}
    assert not test_keys & train_keys
    assert not test_keys & val_keys
    assert not val_keys & train_keys


def test_phrasebank_is_split_on_unique_text_and_levels_are_nested(shared_data):
    pb = load_phrasebank(shared_data)
    assert len({text_key(e.text) for e in pb}) == len(pb)
    assert 4800 < len(pb) < 4846  # duplicates and the two conflicting sentences are gone
    sets = evaluation_sets(make_splits(shared_data), "test")
    all_agree = {e.text for e in sets["phrasebank_allagree"]}
    assert all_agree <= {e.text for e in sets["phrasebank_75agree"]} <= {e.text for e in sets["phrasebank_50agree"]}
    assert all(e.agreement == 100 for e in sets["phrasebank_allagree"])
