"""Configuration: types, env overrides, errors naming the key, secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway import config
from gateway.config import ConfigError


def test_defaults_start_the_offline_demo_without_a_key() -> None:
    """No key anywhere: the simulator answers; a default assistant always exists."""
    cfg = config.loads("")
    assert cfg.upstream.kind == "fake" and cfg.offline_demo
    assert "default" in cfg.assistants


def test_dashscope_key_from_env_selects_real_qwen_and_never_prints() -> None:
    """DASHSCOPE_API_KEY is picked up, and neither repr nor str shows it."""
    cfg = config.loads("", env={"DASHSCOPE_API_KEY": "sk-very-secret"})
    assert cfg.upstream.kind == "dashscope"
    assert cfg.upstream.api_key.reveal() == "sk-very-secret"
    assert "sk-very-secret" not in repr(cfg) and "sk-very-secret" not in str(cfg.upstream)


def test_env_overrides_any_key_with_typed_values() -> None:
    """GATEWAY_<SECTION>__<KEY> overrides the file, parsed as TOML where it parses."""
    cfg = config.loads(
        "[server]\nport = 8000\n",
        env={
            "GATEWAY_SERVER__PORT": "9000",
            "GATEWAY_LIMITS__ORPHAN_GRACE_S": "1.5",
            "GATEWAY_ASSISTANTS__SUPPORT__TITLE": "Support",
            "GATEWAY_ASSISTANTS__SUPPORT__ALLOWED_ORIGINS": "https://a.example,https://b.example",
        },
    )
    assert cfg.server.port == 9000
    assert cfg.limits.orphan_grace_s == 1.5
    assert cfg.assistants["support"].title == "Support"
    assert cfg.assistants["support"].allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nprot = 1\n", "server.prot: unknown key"),
        ("[server]\nport = 'x'\n", "server.port: expected an integer"),
        ("[limits]\nslow_consumer_timeout_s = true\n", "limits.slow_consumer_timeout_s"),
        ("[upstream]\nkind = 'gpt'\n", "upstream.kind: must be one of"),
        ("[assistants.x]\ntemperature = 5\n", "assistants.x.temperature"),
        ("[assistants.x]\nallowed_origins = [1]\n", "assistants.x.allowed_origins"),
        ("[nope]\n", "nope: unknown key"),
        ("[redis]\nurl = 'http://127.0.0.1:6379/0'\n", "redis.url: must start with redis://"),
        ("[redis]\nurl = 'redis://h'\nheartbeat_s = 0\n", "redis.heartbeat_s: must be above 0"),
        ("[auth]\nrequired = true\n", "auth.jwt_secret"),
        ("[server]\nheader_timeout_s = 0\n", "server.header_timeout_s: must be above 0"),
        ("[auth]\nalgorithms = ['none']\njwt_secret = '%s'\n" % ("s" * 32), "auth.algorithms"),
        ("[auth]\njwt_secret = 'short'\n", "auth.jwt_secret: must be at least 32 bytes"),
        ("[auth]\nalgorithms = ['RS256']\njwt_secret = '%s'\n" % ("s" * 32), "auth.jwt_public_key"),
        ("[auth]\nalgorithms = ['RS256']\njwt_public_key = 'nope'\n", "auth.jwt_public_key: not"),
        ("[auth]\nalgorithms = ['HS256']\njwt_public_key = 'k'\n", "auth.jwt_secret: required"),
        ("[auth]\nalgorithms = ['XS1']\njwt_secret = '%s'\n" % ("s" * 32), "auth.algorithms: unk"),
        ("[assistants.x]\nthinking = 'maybe'\n", "assistants.x.thinking: must be one of auto"),
        ("[assistants.x]\nthinking_budget = 0\n", "assistants.x.thinking_budget: must be at"),
        ("[assistants.x]\nendpoint = 'vision'\n", "assistants.x.endpoint: must be one of text"),
        ("[assistants.x]\nvision = 'yes'\n", "assistants.x.vision: expected true or false"),
        ("[upstream]\nthinking_style = 'openai'\n", "upstream.thinking_style: must be one of"),
        ("[limits]\nmax_image_frame_bytes = 1000\n", "limits.max_image_frame_bytes: must not"),
        ("[limits]\nallow_image_urls = 1\n", "limits.allow_image_urls: expected true"),
        ("[limits]\nmax_pending_images = 3\n", "limits.max_pending_images: must be at least"),
        ("[limits]\nmax_pending_images = 'x'\n", "limits.max_pending_images: expected"),
        ("[limits]\npending_image_ttl_s = 0\n", "limits.pending_image_ttl_s: must be above 0"),
    ],
)
def test_bad_values_name_the_key(text: str, key: str) -> None:
    """Unknown keys, wrong types and bad ranges stop with the dotted key in the message."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config.loads(text)


def test_time_limits_accept_integers_and_decimals() -> None:
    """Seconds may be written as integers or decimals."""
    cfg = config.loads("[limits]\nresume_window_s = 60\norphan_grace_s = 0.25\n")
    assert cfg.limits.resume_window_s == 60.0 and cfg.limits.orphan_grace_s == 0.25


def test_check_config_exits_nonzero_with_one_line_naming_the_key(tmp_path) -> None:
    """`python -m gateway check-config` fails on a bad file with a one-line message."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\noutbox_max_bytes = 'big'\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "limits.outbox_max_bytes" in result.stderr


def test_token_command_prints_a_verifiable_jwt(tmp_path) -> None:
    """`python -m gateway token --sub alice --admin` prints a JWT that verifies as admin alice."""
    from gateway.auth import verify_token

    good = tmp_path / "c.toml"
    good.write_text("[auth]\njwt_secret = 'k' \naudience = 'gw'\n".replace("'k'", repr("k" * 32)))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "token",
            "--config",
            str(good),
            "--sub",
            "alice",
            "--admin",
            "--ttl",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    identity = verify_token(config.load(good).auth, result.stdout.strip())
    assert identity.user == "alice" and identity.admin


def test_show_reasoning_defaults_on_and_takes_only_a_bool() -> None:
    """assistants.<name>.show_reasoning is true unless set, and a non-bool names the key."""
    cfg = config.loads("[assistants.quiet]\nshow_reasoning = false\n")
    assert cfg.assistants["default"].show_reasoning
    assert not cfg.assistants["quiet"].show_reasoning
    with pytest.raises(ConfigError, match=r"assistants\.quiet\.show_reasoning"):
        config.loads("[assistants.quiet]\nshow_reasoning = 'no'\n")


def test_todays_qwen_keys_default_to_the_models_own_behaviour() -> None:
    """thinking auto, no budget, endpoint from the model, vision on; image limits 5 MB, 4, 8 MB."""
    cfg = config.loads('[assistants.x]\nthinking = "off"\nendpoint = "multimodal"\n')
    default = cfg.assistants["default"]
    assert (default.thinking, default.thinking_budget, default.endpoint, default.vision) == (
        "auto",
        None,
        None,
        True,
    )
    assert (cfg.assistants["x"].thinking, cfg.assistants["x"].endpoint) == ("off", "multimodal")
    assert cfg.upstream.thinking_style == "dashscope"
    limits = cfg.limits
    assert (limits.max_image_bytes, limits.max_images_per_message) == (5 * 1024 * 1024, 4)
    assert (limits.max_image_frame_bytes, limits.allow_image_urls) == (8 * 1024 * 1024, False)


def test_pending_uploads_default_to_twice_a_message_and_ten_minutes() -> None:
    """limits.max_pending_images follows max_images_per_message unless set; TTL 600 s."""
    assert (
        config.loads("").limits.pending_images_cap,
        config.loads("").limits.pending_image_ttl_s,
    ) == (8, 600.0)
    limits = config.loads("[limits]\nmax_images_per_message = 3\n").limits
    assert limits.pending_images_cap == 6
    limits = config.loads("[limits]\nmax_images_per_message = 3\nmax_pending_images = 3\n").limits
    assert limits.pending_images_cap == 3
