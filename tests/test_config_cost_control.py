"""Configuration of cost control: usage, quotas, trusted proxies, upstream pools, queue."""

from __future__ import annotations

import pytest

from gateway import config
from gateway.config import ConfigError


def test_defaults_set_no_quota_no_cap_and_one_upstream() -> None:
    """Out of the box: no quota, no concurrency cap, no pool, 90 days of usage kept."""
    cfg = config.loads("")
    limits = cfg.limits
    assert limits.tokens_per_user_per_day == 0 and limits.anonymous_tokens_per_ip_per_day == 0
    assert limits.anonymous_messages_per_minute_per_ip == 0
    assert limits.max_anonymous_ids_per_ip_per_hour == 0
    assert limits.usage_retention_days == 90
    assert cfg.upstream.max_concurrent == 0 and cfg.upstream.continuation == "none"
    assert cfg.upstream.cooldown_s <= cfg.upstream.max_cooldown_s
    assert dict(cfg.upstreams) == {} and cfg.server.trusted_proxies == ()
    default = cfg.assistants["default"]
    assert default.upstreams == () and not default.continue_on_failure
    assert default.tokens_per_day == 0


def test_pools_tiers_and_keys_are_read() -> None:
    """[upstreams.<name>] tables; an inner list in assistants.<name>.upstreams is one tier."""
    cfg = config.loads(
        """
[server]
trusted_proxies = ["10.0.0.0/8", "::1"]
[upstream]
max_concurrent = 8
queue_timeout_s = 2.5
cooldown_s = 1
max_cooldown_s = 60
continuation = "vllm"
[upstreams.primary]
base_url = "https://dashscope-intl.aliyuncs.com"
api_key = "sk-primary-secret"
weight = 3
[upstreams.local]
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
models = ["qwen-plus"]
[assistants.support]
upstreams = [["primary", "local"], "default"]
continue_on_failure = true
tokens_per_day = 100000
"""
    )
    assert cfg.upstreams["primary"].weight == 3
    assert cfg.upstreams["local"].kind == "openai"
    assert cfg.upstreams["local"].models == ("qwen-plus",)
    assert "sk-primary-secret" not in repr(cfg)
    support = cfg.assistants["support"]
    assert support.upstreams == (("primary", "local"), ("default",))
    assert support.continue_on_failure and support.tokens_per_day == 100000
    assert cfg.upstream.queue_timeout_s == 2.5 and cfg.upstream.continuation == "vllm"


def test_env_overrides_reach_pools_and_preferences() -> None:
    """GATEWAY_UPSTREAMS__<NAME>__<KEY>; a comma list of upstreams is one name per tier."""
    cfg = config.loads(
        "[upstreams.backup]\nbase_url = 'http://b'\n",
        env={
            "GATEWAY_UPSTREAMS__BACKUP__WEIGHT": "2",
            "GATEWAY_ASSISTANTS__DEFAULT__UPSTREAMS": "backup,default",
            "DASHSCOPE_API_KEY": "sk-env",
        },
    )
    assert cfg.upstreams["backup"].weight == 2
    assert cfg.upstreams["backup"].api_key.reveal() == "sk-env"  # as for [upstream]
    assert cfg.assistants["default"].upstreams == (("backup",), ("default",))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\ntrusted_proxies = ['10.0.0.0/33']\n", "server.trusted_proxies: '10.0.0.0/33'"),
        ("[server]\ntrusted_proxies = ['proxy.local']\n", "server.trusted_proxies"),
        ("[limits]\nusage_retention_days = 0\n", "limits.usage_retention_days"),
        ("[limits]\ntokens_per_user_per_day = -1\n", "limits.tokens_per_user_per_day"),
        (
            "[limits]\nanonymous_tokens_per_ip_per_day = 'x'\n",
            "limits.anonymous_tokens_per_ip_per_day",
        ),
        ("[upstream]\nmax_concurrent = 1.5\n", "upstream.max_concurrent"),
        ("[upstream]\ncooldown_s = 10\nmax_cooldown_s = 5\n", "upstream.max_cooldown_s"),
        ("[upstream]\ncontinuation = 'yes'\n", "upstream.continuation: must be one of"),
        ("[upstreams.a]\nkind = 'fake'\n", "upstreams.a.kind: must be one of"),
        ("[upstreams.a]\nweight = 0\n", "upstreams.a.weight: must be at least 1"),
        ("[upstreams.a]\nbogus = 1\n", "upstreams.a.bogus: unknown key"),
        ("[upstreams.default]\nbase_url = 'http://x'\n", "upstreams.default"),
        ("upstreams = 3\n", "upstreams: expected a table"),
        ("[assistants.x]\nupstreams = ['nowhere']\n", "assistants.x.upstreams: no upstream named"),
        ("[assistants.x]\nupstreams = [1]\n", "assistants.x.upstreams: each entry"),
        ("[assistants.x]\nupstreams = [[]]\n", "assistants.x.upstreams: each entry"),
        (
            "[assistants.x]\nupstreams = 'default,default'\n",
            "assistants.x.upstreams: an upstream is listed twice",
        ),
        (
            "[upstreams.a]\nmodels = ['qwen-max']\n[assistants.x]\nupstreams = ['a']\n",
            "assistants.x.upstreams: none of them serves the model 'qwen-plus'",
        ),
        ("[assistants.x]\ntokens_per_day = -5\n", "assistants.x.tokens_per_day"),
        ("[assistants.x]\ncontinue_on_failure = 'yes'\n", "assistants.x.continue_on_failure"),
    ],
)
def test_bad_values_name_the_key(text: str, key: str) -> None:
    """Each bad cost-control value stops start-up naming its key."""
    with pytest.raises(ConfigError) as caught:
        config.loads(text)
    assert str(caught.value).startswith(key), str(caught.value)
