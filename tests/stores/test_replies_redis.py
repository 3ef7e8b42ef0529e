"""The reply stream's entry codec: any grouping of steps rebuilds the exact steps."""

from __future__ import annotations

import pytest

from gateway.replies import PACK_BYTES, ReplyLog, StepKind
from gateway.stores.reply_mirrors import decode_steps
from gateway.stores.reply_publisher import encode_steps

ANSWER, REASONING = StepKind.ANSWER, StepKind.REASONING
STEPS = ["Hel", "lo, ", "世界", "🙂", "**bold**", "é", "\n```py\nx = 1\n```"]
# A reasoning reply: thinking first, then the answer, then (rarely) more thinking.
KINDS = [REASONING, REASONING, ANSWER, ANSWER, ANSWER, REASONING, ANSWER]


def _log(steps: list[tuple[str, StepKind]]) -> ReplyLog:
    log = ReplyLog("m-1", "conv-1", "alice", "c-1", "qwen-plus")
    for text, kind in steps:
        log.append(text, kind)
    return log


@pytest.mark.parametrize("kinds", [None, KINDS], ids=["answer", "mixed"])
@pytest.mark.parametrize("packed", [False, True], ids=["tail", "packed"])
@pytest.mark.parametrize("group", [1, 2, 3, len(STEPS)])
def test_steps_grouped_into_entries_decode_to_the_same_steps_and_seqs(
    group: int, packed: bool, kinds: list[StepKind] | None
) -> None:
    """Entries of 1, 2, 3 or all steps give back each step, with its seq and kind,
    unchanged, whether the log still holds them as steps or packed into UTF-8 chunks."""
    steps = list(zip(STEPS, kinds or [ANSWER] * len(STEPS), strict=True))
    if packed:  # enough text before them that they are packed
        steps = [("x" * PACK_BYTES, ANSWER), *steps, ("y" * PACK_BYTES, ANSWER)]
    log = _log(steps)
    rebuilt: list[tuple[int, tuple[str, StepKind]]] = []
    for start in range(0, len(steps), group):
        upto = min(start + group, len(steps))
        first, decoded = decode_steps(f"0-{upto}", encode_steps(log, start, upto))
        assert first == start + 1
        rebuilt.extend(enumerate(decoded, start=first))
    assert rebuilt == list(enumerate(steps, start=1))


def test_lengths_count_code_points_so_astral_characters_are_not_cut() -> None:
    """An emoji (two UTF-16 units, four UTF-8 bytes) is one code point in the lengths."""
    fields = encode_steps(_log([("🙂🙂", ANSWER), ("a", ANSWER)]), 0, 2)
    assert fields == {"t": "🙂🙂a", "n": "2,1"}  # answer only: no kinds field
    assert decode_steps("0-2", fields) == (1, [("🙂🙂", ANSWER), ("a", ANSWER)])


def test_an_entry_with_reasoning_carries_one_kind_digit_a_step() -> None:
    """Kinds travel as ``k``, one digit a step (1: reasoning), only when one is reasoning."""
    log = _log([("hm", REASONING), ("Hi", ANSWER), ("!", ANSWER)])
    fields = encode_steps(log, 0, 2)
    assert fields == {"t": "hmHi", "n": "2,2", "k": "10"}
    assert decode_steps("0-2", fields) == (1, [("hm", REASONING), ("Hi", ANSWER)])
    assert encode_steps(log, 1, 3) == {"t": "Hi!", "n": "2,1"}  # no reasoning among these
