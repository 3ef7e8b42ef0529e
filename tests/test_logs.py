"""Logging: tokens redacted, and the access log costs nothing when its level is off."""

from __future__ import annotations

import logging

from gateway import logs


def test_redact_hides_query_tokens_and_bearer_values() -> None:
    """A token in a query string or after Bearer never survives redaction."""
    text = logs.redact("/ws?session_type=group&token=abc.def.ghi Authorization: Bearer xyz.123")
    assert "abc.def.ghi" not in text and "xyz.123" not in text
    assert text.count("[redacted]") == 2


def test_the_access_logger_is_disabled_above_info(monkeypatch) -> None:
    """At warning, aiohttp is told not to time requests or build access lines at all."""
    access = logs.AccessLogger(logging.getLogger("aiohttp.access"), "")
    monkeypatch.setattr(logs, "_level", logging.WARNING)
    assert access.enabled is False
    monkeypatch.setattr(logs, "_level", logging.INFO)
    assert access.enabled is True
