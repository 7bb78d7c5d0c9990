"""How durations and token counts read in the list, the dashboard, the CLI and the trace
page (whose script, view.js ``fmtMs``, follows the same rules)."""

from __future__ import annotations

import pytest

from lowtrace._textview import duration_text, tokens_text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.0, "0.00 ms"),
        (7.123, "7.12 ms"),
        (49.0, "49 ms"),
        (640.5, "641 ms"),  # halves round up, as the script's Math.floor(x + 0.5) does
        (999.4, "999 ms"),
        (999.6, "1.00 s"),  # never "1000 ms"
        (2125.0, "2.13 s"),
        (59_994.0, "59.99 s"),
        (59_996.0, "1 min 0 s"),  # never "60.00 s"
        (65_000.0, "1 min 5 s"),
        (3_600_000.0 * 30, "1,800 min 0 s"),
    ],
)
def test_a_duration_reads_short_on_one_line(ms: float, text: str) -> None:
    assert duration_text(ms) == text


def test_token_counts_have_thousands_separators() -> None:
    assert tokens_text(1010) == "1,010"
    assert tokens_text(None) == ""
