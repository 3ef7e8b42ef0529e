"""The delta pace, with plain values: when a paced socket's next delta may go."""

from __future__ import annotations

import pytest

from gateway.pace import DeltaPace, frame_interval_ms


def test_no_interval_means_no_pace() -> None:
    """frame_interval_ms 0 gives no pace object at all: the writer's default path."""
    assert DeltaPace.every_ms(0) is None
    pace = DeltaPace.every_ms(25)
    assert pace is not None and pace.interval == 0.025


def test_the_first_delta_goes_at_once() -> None:
    """A socket's first delta never waits."""
    pace = DeltaPace(0.025)
    assert pace.wait(100.0, end_visible=False) == 0.0


def test_a_delta_after_a_caught_up_frame_waits_out_the_interval() -> None:
    """After a frame that took all there was, the next waits until interval has passed."""
    pace = DeltaPace(0.025)
    pace.sent(100.0, caught_up=True)
    assert pace.wait(100.0, end_visible=False) == pytest.approx(0.025)
    assert pace.wait(100.015, end_visible=False) == pytest.approx(0.010)
    assert pace.wait(100.025, end_visible=False) == 0.0
    assert pace.wait(101.0, end_visible=False) == 0.0


def test_a_frame_cut_at_the_merge_limit_is_followed_at_once() -> None:
    """A frame that left text behind (merge limit, change of kind) does not slow the reader."""
    pace = DeltaPace(0.025)
    pace.sent(100.0, caught_up=False)
    assert pace.wait(100.0, end_visible=False) == 0.0
    pace.sent(100.001, caught_up=True)
    assert pace.wait(100.002, end_visible=False) == pytest.approx(0.024)


def test_the_last_delta_goes_at_once_when_the_end_is_visible() -> None:
    """Once the reply's end is visible nothing more can merge: the last delta (and done)
    are not held."""
    pace = DeltaPace(1.0)
    pace.sent(100.0, caught_up=True)
    assert pace.wait(100.1, end_visible=True) == 0.0


@pytest.mark.parametrize(
    ("value", "ms"), [(None, 0), ("", 0), ("0", 0), ("25", 25), ("0025", 25), ("1000", 1000)]
)
def test_frame_interval_ms_accepts_0_to_1000(value: str | None, ms: int) -> None:
    """Absent or empty is 0; decimal integers from 0 to 1000 are taken as they are."""
    assert frame_interval_ms(value) == ms


@pytest.mark.parametrize(
    "value", ["-1", "1001", "25.5", "1e2", " 25", "abc", "\u0662\u0665", "99999999999"]
)
def test_frame_interval_ms_refuses_anything_else_naming_the_rule(value: str) -> None:
    """A negative, too large, fractional, padded or non-ASCII value is refused by rule."""
    with pytest.raises(ValueError, match=r"^frame_interval_ms must be an integer from 0 to 1000$"):
        frame_interval_ms(value)
