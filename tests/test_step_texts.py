"""A reply's step texts: packing, exact read-back, sizes in code points and bytes, kinds."""

from __future__ import annotations

import sys

from gateway.step_texts import ANSWER, PACK_BYTES, REASONING, StepTexts


def _texts(*steps: str) -> StepTexts:
    texts = StepTexts()
    for step in steps:
        texts.append(step)
    return texts


def test_steps_are_numbered_from_one() -> None:
    """Each append returns the next seq; head is the last one (0 before any)."""
    texts = StepTexts()
    assert texts.head == 0
    assert [texts.append(step) for step in ["a", "b", "c"]] == [1, 2, 3]
    assert texts.head == 3


def test_texts_read_back_exactly_across_chunk_boundaries() -> None:
    """Steps packed into several chunks and the tail join back into exactly what came."""
    steps = [f"{i:04d}" + "x" * 5000 for i in range(40)]  # 200 KB: several chunks
    texts = _texts(*steps)
    assert texts.footprint() < 2 * sum(map(len, steps))  # not one object per step
    assert texts.text_between(0, 40) == "".join(steps)
    for after, upto in [(0, 1), (5, 7), (6, 13), (12, 39), (38, 40), (39, 40), (20, 20)]:
        assert texts.text_between(after, upto) == "".join(steps[after:upto])


def test_a_step_larger_than_a_chunk_reads_back_whole() -> None:
    """A single step over PACK_BYTES is packed whole and read back whole."""
    big = "é" * PACK_BYTES
    texts = _texts("a", big, "b", "c")
    assert texts.text_between(0, 4) == "a" + big + "bc"
    assert texts.text_between(1, 2) == big


def test_non_ascii_is_counted_in_code_points_and_utf8_bytes() -> None:
    """sizes are code points; size and bytes_behind are UTF-8 bytes."""
    texts = _texts("ab", "你好", "🚀", "é")
    assert texts.sizes(0, 4) == [2, 2, 1, 1]
    assert texts.sizes(1, 3) == [2, 1]
    assert [texts.bytes_behind(seq) for seq in range(5)] == [14, 12, 6, 2, 0]
    assert texts.size == 14 + 16 * 4
    assert texts.answer_length == 6


def test_a_lone_surrogate_is_held_as_a_replacement_character() -> None:
    """Text UTF-8 cannot carry is stored as U+FFFD; a surrogate pair stays one character."""
    texts = _texts("a\ud83d", "\ud83d\ude80")
    assert texts.answer == "a\ufffd🚀"
    assert texts.sizes(0, 2) == [2, 1]
    assert texts.bytes_behind(0) == len("a\ufffd🚀".encode())


def test_a_reader_that_keeps_up_gets_the_step_itself() -> None:
    """Reading the one newest step returns the appended string, not a copy."""
    step = "".join(["tok", "en"])
    texts = _texts("a", step)
    text, seq, kind = texts.read(1, 2, 4096)
    assert (text is step, seq, kind) == (True, 2, ANSWER)


def test_read_merges_whole_steps_up_to_upto_and_about_max_chars() -> None:
    """A read stops at upto, and at the first step reaching max_chars (at least one)."""
    texts = _texts("ab", "cd", "ef", "gh")
    assert texts.read(0, 3, 1000) == ("abcdef", 3, ANSWER)
    assert texts.read(0, 4, 3) == ("abcd", 2, ANSWER)
    assert texts.read(0, 4, 1) == ("ab", 1, ANSWER)
    assert texts.read(4, 4, 10)[:2] == ("", 4)


def test_kinds_are_per_step_and_reads_never_merge_across_them() -> None:
    """Reasoning then answer: kinds by seq, texts and lengths by kind, reads of one kind."""
    texts = StepTexts()
    for text, kind in [("Let", REASONING), (" me", REASONING), ("Hi", ANSWER), ("!", ANSWER)]:
        texts.append(text, kind)
    assert [texts.kind(seq) for seq in range(1, 5)] == [REASONING, REASONING, ANSWER, ANSWER]
    assert (texts.reasoning, texts.answer) == ("Let me", "Hi!")
    assert (texts.reasoning_length, texts.answer_length) == (6, 3)
    assert texts.read(0, 4, 1000) == ("Let me", 2, REASONING)
    assert texts.read(2, 4, 1000) == ("Hi!", 4, ANSWER)
    assert texts.text_between(1, 3) == " meHi"
    assert not texts.only_answers


def test_an_answer_only_reply_reports_no_reasoning() -> None:
    """Steps appended without a kind are answers; there is no reasoning."""
    texts = _texts("a", "b", "c")
    assert texts.only_answers
    assert [texts.kind(seq) for seq in range(1, 4)] == [ANSWER, ANSWER, ANSWER]
    assert (texts.reasoning, texts.reasoning_length, texts.answer_length) == ("", 0, 3)


def test_a_reply_that_starts_with_reasoning_is_not_answers_only() -> None:
    """The first step's kind counts even before any change of kind."""
    texts = StepTexts()
    texts.append("hmm", REASONING)
    assert not texts.only_answers
    assert (texts.kind(1), texts.answer, texts.reasoning) == (REASONING, "", "hmm")


def test_a_long_reply_costs_about_its_utf8_size() -> None:
    """3 000 steps are held in about their UTF-8 size plus 16 bytes a step."""
    step = "token café 你好🚀 " * 20  # UCS-4 as a str: 4 bytes a character
    texts = _texts(*[step] * 3000)
    utf8 = 3000 * len(step.encode())
    assert texts.size == utf8 + 16 * 3000
    # per-step strings would be 3000 * sys.getsizeof(step), 2.8 times as much
    assert texts.footprint() < utf8 + 16 * 3000 + 2 * PACK_BYTES + 3000 * sys.getsizeof(0)
    assert texts.footprint() < 3000 * sys.getsizeof(step) / 2


def test_a_read_short_of_the_newest_step_names_its_own_kind() -> None:
    """A one-step read below a change of kind that came after ``upto`` says the step's kind."""
    texts = StepTexts()
    for text, kind in [("Let", REASONING), (" me", REASONING), ("Hi", ANSWER)]:
        texts.append(text, kind)
    assert texts.read(1, 2, 1000) == (" me", 2, REASONING)
    assert texts.read(0, 2, 1000) == ("Let me", 2, REASONING)
