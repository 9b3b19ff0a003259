import math

import pytest

from llmrec.eval.metrics import markdown_table, utility_metrics


def test_perfect_and_reversed_rankings():
    assert utility_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])["auc"] == 1.0
    reversed_ = utility_metrics([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])
    assert reversed_["auc"] == 0.0 and reversed_["accuracy"] == 0.0


def test_hand_computed_values():
    metrics = utility_metrics([1, 0, 1, 0], [0.8, 0.4, 0.3, 0.1])
    assert metrics["auc"] == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered right
    assert metrics["accuracy"] == pytest.approx(0.75)
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.3) + math.log(0.9)) / 4
    assert metrics["log_loss"] == pytest.approx(expected)
    assert metrics["samples"] == 4 and metrics["positive_rate"] == 0.5


def test_single_class_has_no_auc():
    assert math.isnan(utility_metrics([1, 1], [0.2, 0.9])["auc"])


def test_markdown_table():
    table = markdown_table({"test": utility_metrics([0, 1], [0.2, 0.9])})
    lines = table.splitlines()
    assert lines[0] == "| split | auc | accuracy | log_loss | samples |"
    assert lines[2].startswith("| test | 1.0000 | 1.0000 |") and lines[2].endswith("| 2 |")
