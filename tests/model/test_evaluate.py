import numpy as np
import pytest
import torch

from model.evaluate import (
    EvaluationInputError,
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    read_labelled_csv,
)


def test_metrics_on_a_known_confusion():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 2, 2]
    m = classification_metrics(y_true, y_pred)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert m["per_class"]["negative"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 2 / 3, 2 / 3]))


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    probs = np.array([[0.8, 0.1, 0.1]] * 10)
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error(np.array([[0.99, 0.005, 0.005]] * 10), y) == pytest.approx(0.19, abs=1e-6)


def test_temperature_scaling_recovers_the_temperature_that_generated_the_labels():
    gen = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 3, generator=gen) * 2
    labels = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=gen).squeeze(1)
    t = fit_temperature(true_logits * 3.0, labels)  # an over-confident model: logits 3x too large
    assert t == pytest.approx(3.0, rel=0.1)


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(EvaluationInputError, match="no such file"):
        read_labelled_csv(tmp_path / "missing.csv")
    f = tmp_path / "a.csv"
    f.write_text("sentence,label\nhello,positive\n")
    with pytest.raises(EvaluationInputError, match="no column 'text'"):
        read_labelled_csv(f)
    f.write_text("text,label\nhello,positive\nbye,bullish\n")
    with pytest.raises(EvaluationInputError, match=r"a.csv:3: unknown label 'bullish'"):
        read_labelled_csv(f)
    f.write_bytes(b"text,label\n\xff\xfe,positive\n")
    with pytest.raises(EvaluationInputError, match="not UTF-8"):
        read_labelled_csv(f)
