"""The table legend says when the test set is too small for any difference to be significant."""

from __future__ import annotations

from harness.report.tables import Table, legend


def _table(n: int) -> Table:
    return Table(["model"], [], [], kind="runs", alpha=0.05, n_images=[n],
                 references={"run": "gray"})


def test_too_few_images_for_significance_is_said():
    text = " ".join(legend(_table(3)))
    assert "With 3 test images no per-image difference can reach p < 0.05" in text
    assert "2/2^3 = 0.25" in text


def test_enough_images_get_no_such_note():
    assert "no per-image difference" not in " ".join(legend(_table(6)))
