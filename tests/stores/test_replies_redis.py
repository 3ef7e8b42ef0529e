"""The reply stream's entry codec: any grouping of steps rebuilds the exact steps."""

from __future__ import annotations

import pytest

from gateway.stores.replies_redis import decode_steps, encode_steps

STEPS = ["Hel", "lo, ", "世界", "🙂", "", "**bold**", "é", "\n```py\nx = 1\n```"]


@pytest.mark.parametrize("group", [1, 2, 3, len(STEPS)])
def test_steps_grouped_into_entries_decode_to_the_same_steps_and_seqs(group: int) -> None:
    """Entries of 1, 2, 3 or all steps give back each step, with its seq, unchanged."""
    steps = [s for s in STEPS if s]  # a step always adds text
    rebuilt: list[tuple[int, str]] = []
    for start in range(0, len(steps), group):
        chunk = steps[start : start + group]
        fields = {k: str(v) for k, v in encode_steps(chunk).items()}
        first, decoded = decode_steps(f"0-{start + len(chunk)}", fields)
        assert first == start + 1
        rebuilt.extend(enumerate(decoded, start=first))
    assert rebuilt == list(enumerate(steps, start=1))


def test_lengths_count_code_points_so_astral_characters_are_not_cut() -> None:
    """An emoji (two UTF-16 units, four UTF-8 bytes) is one code point in the lengths."""
    fields = {k: str(v) for k, v in encode_steps(["🙂🙂", "a"]).items()}
    assert fields == {"t": "🙂🙂a", "n": "2,1"}
    assert decode_steps("0-2", fields) == (1, ["🙂🙂", "a"])
