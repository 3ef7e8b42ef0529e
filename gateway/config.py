"""Configuration: read once from TOML, overridden by the environment, typed and frozen.

Every section is a frozen dataclass. :func:`load` walks the dataclasses' annotations, so
an unknown key, a wrong type or a value out of range stops start-up with a
:class:`ConfigError` whose message names the key by its dotted path
(``limits.outbox_max_bytes: expected an integer, got 'lots'``).

Any key can be overridden by ``GATEWAY_<SECTION>__<KEY>`` (and an assistant's key by
``GATEWAY_ASSISTANTS__<NAME>__<KEY>``); the value is parsed as TOML when it parses,
else taken as a string, then checked like a value from the file.
Secrets are wrapped in :class:`Secret`, whose ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "GATEWAY_"


class ConfigError(ValueError):
    """A configuration problem; the message starts with the key's dotted name."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that must never appear in logs, reprs or browser-bound data."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)

    def reveal(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: listening address, heartbeat, shutdown grace, instance id."""

    host: str = "127.0.0.1"
    port: int = 8080
    heartbeat_s: float = 30.0
    shutdown_grace_s: float = 10.0
    header_timeout_s: float = 15.0  # a request's head, from the connection's start or last reply
    public_metrics: bool = True
    instance_id: str = ""  # empty: derived from host name and pid at start-up
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed
    sign_in_url: str = ""  # where the page sends a visitor who must sign in; empty: no link


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """``[upstream]``: the model service, its key, timeouts and retries."""

    kind: Literal["dashscope", "openai", "fake"] = "dashscope"
    base_url: str = "https://dashscope.aliyuncs.com"
    api_key: Secret = Secret("")
    model: str = "qwen-plus"
    incremental_output: bool = False
    result_format: Literal["message", "text"] = "message"
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    max_retries: int = 2
    retry_backoff_s: float = 0.5
    pool_size: int = 1000
    # Cost control (contract sections 12 and 13)
    max_concurrent: int = 0  # replies streaming upstream at once; 0: no cap
    queue_timeout_s: float = 30.0  # the longest wait for a slot
    cooldown_s: float = 5.0  # an upstream that failed is skipped this long, doubling
    max_cooldown_s: float = 300.0
    continuation: Literal["none", "vllm"] = "none"  # how `openai` upstreams continue a reply
    thinking_style: Literal["dashscope", "vllm"] = "dashscope"  # how `openai` asks for thinking


@dataclass(frozen=True, slots=True)
class NamedUpstreamConfig:
    """One ``[upstreams.<name>]`` table; timeouts and retries come from ``[upstream]``."""

    kind: Literal["dashscope", "openai"] = "dashscope"
    base_url: str = "https://dashscope.aliyuncs.com"
    api_key: Secret = Secret("")
    models: tuple[str, ...] = ()  # the model names it serves; empty: any
    weight: int = 1  # its share of turns among upstreams of equal preference


@dataclass(frozen=True, slots=True)
class AssistantConfig:
    """``[assistants.NAME]``: one assistant's model, prompt, sampling and origins."""

    title: str = "Assistant"
    model: str = ""  # empty: upstream.model
    system_prompt: str = "You are a helpful assistant."
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    allowed_origins: tuple[str, ...] = ()
    greeting: str = ""
    show_reasoning: bool = True  # send a reasoning model's thinking to viewers and history
    tokens_per_day: int = 0  # all users together; 0: no quota
    # In order of preference; an inner list is a tier of equal preference. Empty: the
    # [upstream] table, named "default".
    upstreams: tuple[tuple[str, ...], ...] = ()
    continue_on_failure: bool = False
    # Today's Qwen (contract section 11)
    thinking: Literal["auto", "on", "off"] = "auto"  # auto: send nothing, the model's default
    thinking_budget: int | None = None  # most reasoning tokens; None: the model's own cap
    endpoint: Literal["text", "multimodal"] | None = None  # DashScope; None: from the model
    vision: bool = True  # false: images are refused before any upstream call


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """``[auth]``: whether a token is required and how tokens are checked."""

    required: bool = False
    jwt_secret: Secret = Secret("")
    jwt_public_key: str = ""
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str = ""
    issuer: str = ""
    auth_timeout_s: float = 10.0
    # Signs anonymous credentials; empty: made at start (memory) or once, kept in Redis.
    anonymous_secret: Secret = Secret("")
    # A header (e.g. X-Forwarded-User) naming the user, believed only from server.trusted_proxies.
    trusted_user_header: str = ""


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """``[limits]``: per-socket, per-user and per-instance bounds (the send policy is
    derived from these: :mod:`gateway.send_policy`)."""

    outbox_max_bytes: int = 256 * 1024
    slow_consumer_timeout_s: float = 15.0
    send_timeout_s: float = 10.0
    max_frame_bytes: int = 64 * 1024
    max_delta_chars: int = 16 * 1024
    max_message_chars: int = 8000
    messages_per_minute: int = 30
    max_connections_per_user: int = 20
    max_connections: int = 20000
    max_replies_per_user: int = 4
    resume_window_s: float = 300.0
    orphan_grace_s: float = 30.0
    history_max_messages: int = 200
    history_budget_chars: int = 24000
    max_request_bytes: int = 64 * 1024
    # Memory mode (no redis.url): what one instance keeps (0: no bound, or never expires).
    anonymous_history_ttl_s: float = 86400.0
    memory_max_conversations: int = 20000
    memory_max_history_bytes: int = 256 * 1024 * 1024
    memory_max_reply_bytes: int = 256 * 1024 * 1024
    # Cost control (contract section 12); 0: no limit
    tokens_per_user_per_day: int = 0
    usage_retention_days: int = 90
    anonymous_messages_per_minute_per_ip: int = 0
    anonymous_tokens_per_ip_per_day: int = 0
    max_anonymous_ids_per_ip_per_hour: int = 0
    # Images in a message (contract section 11)
    max_image_bytes: int = 5 * 1024 * 1024  # one image, decoded
    max_images_per_message: int = 4
    max_image_frame_bytes: int = 8 * 1024 * 1024  # the frame limit of a message with images
    allow_image_urls: bool = False  # https:// image URLs, passed upstream as they are
    # Uploads (POST /api/v1/images) no message has named yet, per conversation; None: twice
    # max_images_per_message (pending_images_cap)
    max_pending_images: int | None = None
    pending_image_ttl_s: float = 600.0  # an upload no message names is forgotten after this

    @property
    def pending_images_cap(self) -> int:
        """How many uploads a conversation may hold that no message has named yet."""
        if self.max_pending_images is None:
            return 2 * self.max_images_per_message
        return self.max_pending_images


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """``[redis]``: shared state; no URL means memory mode."""

    url: Secret = Secret("")  # may carry a password: never printed
    key_prefix: str = "gw:"
    connect_timeout_s: float = 2.0
    command_timeout_s: float = 5.0  # a command's answer; XREAD blocks are shorter than this
    heartbeat_s: float = 2.0  # presence refresh; an instance silent for 3 beats is dead
    history_ttl_s: float = 30 * 24 * 3600.0  # a conversation idle this long is forgotten
    max_connections: int = 1000  # the client's pool
    # Sentinel: the master's address comes from these (host:port each); redis.url still gives
    # the scheme (rediss:// for TLS), the password and the database.
    sentinels: tuple[str, ...] = ()
    sentinel_master: str = ""  # the master's name in Sentinel's configuration
    sentinel_password: Secret = Secret("")  # for the Sentinels themselves (requirepass)
    # TLS (rediss://): the CA that signed the server's certificate; a client certificate
    # and its key when the server asks for one (tls-auth-clients).
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # After each durable write, WAIT for this many replicas to acknowledge it (0: do not).
    wait_replicas: int = 0
    wait_timeout_ms: int = 200


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log]``: level and format."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration: frozen, validated at load, each error naming its key."""

    server: ServerConfig = ServerConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    assistants: Mapping[str, AssistantConfig] = field(
        default_factory=lambda: types.MappingProxyType({"default": AssistantConfig()})
    )
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    redis: RedisConfig = RedisConfig()
    log: LogConfig = LogConfig()
    upstreams: Mapping[str, NamedUpstreamConfig] = field(
        default_factory=lambda: types.MappingProxyType({})
    )

    @property
    def offline_demo(self) -> bool:
        """True when the built-in simulator answers instead of a real model."""
        return self.upstream.kind == "fake"

    def assistant_model(self, name: str) -> str:
        return self.assistants[name].model or self.upstream.model


# --------------------------------------------------------------------------- loading


def load(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    required: bool = True,
) -> Config:
    """Read the TOML file at *path*, apply env overrides, validate.

    A missing file is an error naming the path, unless ``required`` is false (the CLI's
    default ``./config.toml``): then the defaults apply.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None and (required or Path(path).exists()):
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file (check --config or GATEWAY_CONFIG)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _apply_env(raw, env)
    config = _build(Config, raw, "")
    return _finish(config, env)


def loads(text: str, env: Mapping[str, str] | None = None) -> Config:
    """Like :func:`load`, from a TOML string (tests, examples)."""
    env = {} if env is None else env
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: not valid TOML: {exc}") from None
    _apply_env(raw, env)
    return _finish(_build(Config, raw, ""), env)


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            continue
        target = raw
        for part in parts[:-1]:
            node = target.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(parts)}: {parts[0]} is not a table")
            target = node
        target[parts[-1]] = _parse_env_value(text)


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _finish(config: Config, env: Mapping[str, str]) -> Config:
    assistants = dict(config.assistants)
    assistants.setdefault("default", AssistantConfig())
    upstream = config.upstream
    if not upstream.api_key and env.get("DASHSCOPE_API_KEY"):
        upstream = dataclasses.replace(upstream, api_key=Secret(env["DASHSCOPE_API_KEY"]))
    if upstream.kind == "dashscope" and not upstream.api_key:
        # No key anywhere: the offline demo (contract section 2). An OpenAI-compatible
        # endpoint (vLLM, Ollama) may need no key, so `openai` is taken as configured.
        upstream = dataclasses.replace(upstream, kind="fake")
    redis_url = config.redis.url.reveal()
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis.url: must start with redis://, rediss:// or unix://")
    if redis_url and config.redis.heartbeat_s <= 0:
        raise ConfigError("redis.heartbeat_s: must be above 0")
    _check_redis(config.redis)
    auth = config.auth
    if auth.required and not (auth.jwt_secret or auth.jwt_public_key):
        raise ConfigError("auth.jwt_secret: required when auth.required is true")
    if auth.jwt_secret and len(auth.jwt_secret.reveal().encode()) < 32:
        raise ConfigError("auth.jwt_secret: must be at least 32 bytes (RFC 7518 section 3.2)")
    if auth.anonymous_secret and len(auth.anonymous_secret.reveal().encode()) < 32:
        raise ConfigError("auth.anonymous_secret: must be at least 32 bytes")
    for alg in auth.algorithms:
        if alg.lower() == "none":
            raise ConfigError("auth.algorithms: 'none' is not allowed")
    _check_token_keys(auth)
    if auth.trusted_user_header:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", auth.trusted_user_header):
            raise ConfigError("auth.trusted_user_header: must be a header name (A-Z a-z 0-9 -)")
        if not config.server.trusted_proxies:
            raise ConfigError(
                "auth.trusted_user_header: needs server.trusted_proxies (the proxies that set it)"
            )
    upstreams = _check_cost_control(config, upstream, assistants, env)
    return dataclasses.replace(
        config,
        upstream=upstream,
        assistants=types.MappingProxyType(assistants),
        upstreams=types.MappingProxyType(upstreams),
    )


def _check_token_keys(auth: AuthConfig) -> None:
    """Every listed algorithm has its key, and the public key parses: a mismatch would
    otherwise surface as every token of that algorithm failing at run time.

    HS* tokens are checked with ``auth.jwt_secret``, every other algorithm with
    ``auth.jwt_public_key``. A gateway with no key at all (anonymous visitors only) is
    left alone: it refuses every token.
    """
    if not (auth.jwt_secret or auth.jwt_public_key):
        return
    import jwt  # here, not at the top: the CLI's other commands do not need it

    known = jwt.algorithms.get_default_algorithms()
    for alg in auth.algorithms:
        if alg not in known:
            choices = ", ".join(sorted(set(known) - {"none"}))
            raise ConfigError(f"auth.algorithms: unknown algorithm {alg!r} (known: {choices})")
        if alg.startswith("HS"):
            if not auth.jwt_secret:
                raise ConfigError(f"auth.jwt_secret: required by {alg} in auth.algorithms")
            continue
        if not auth.jwt_public_key:
            raise ConfigError(f"auth.jwt_public_key: required by {alg} in auth.algorithms")
        try:
            key = known[alg].prepare_key(auth.jwt_public_key)
        except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"auth.jwt_public_key: not a PEM public key for {alg} ({type(exc).__name__})"
            ) from None
        if hasattr(key, "private_bytes"):
            raise ConfigError(
                "auth.jwt_public_key: is a private key; give the public key (never the private one)"
            )


def _check_cost_control(
    config: Config,
    upstream: UpstreamConfig,
    assistants: Mapping[str, AssistantConfig],
    env: Mapping[str, str],
) -> dict[str, NamedUpstreamConfig]:
    """Upstream pools, quotas and trusted proxies (contract sections 12 and 13)."""
    import ipaddress  # here, so this section's hunks stay in one place

    for cidr in config.server.trusted_proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(
                f"server.trusted_proxies: {cidr!r} is not an address or CIDR"
            ) from None
    if config.limits.usage_retention_days < 1:
        raise ConfigError("limits.usage_retention_days: must be at least 1")
    if upstream.max_cooldown_s < upstream.cooldown_s:
        raise ConfigError("upstream.max_cooldown_s: must not be below upstream.cooldown_s")
    upstreams: dict[str, NamedUpstreamConfig] = {}
    for name, entry in config.upstreams.items():
        if name == "default":
            raise ConfigError("upstreams.default: the name default is the [upstream] table's")
        if not entry.api_key and entry.kind == "dashscope" and env.get("DASHSCOPE_API_KEY"):
            entry = dataclasses.replace(entry, api_key=Secret(env["DASHSCOPE_API_KEY"]))
        if entry.weight < 1:
            raise ConfigError(f"upstreams.{name}.weight: must be at least 1")
        upstreams[name] = entry
    for name, assistant in assistants.items():
        listed = [u for tier in assistant.upstreams for u in tier]
        for u in listed:
            if u != "default" and u not in upstreams:
                raise ConfigError(f"assistants.{name}.upstreams: no upstream named {u!r}")
        if len(set(listed)) != len(listed):
            raise ConfigError(f"assistants.{name}.upstreams: an upstream is listed twice")
        model = assistant.model or upstream.model
        serving = [u for u in listed if u == "default" or _serves(upstreams[u], model)]
        if listed and not serving:
            raise ConfigError(
                f"assistants.{name}.upstreams: none of them serves the model {model!r}"
            )
    return upstreams


def _serves(entry: NamedUpstreamConfig, model: str) -> bool:
    return not entry.models or model in entry.models


def _preference(value: Any, dotted: str) -> tuple[tuple[str, ...], ...]:
    """``["a", ["b", "c"], "d"]``: a, then b and c shared by weight, then d."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise ConfigError(f"{dotted}: expected a list of upstream names")
    tiers: list[tuple[str, ...]] = []
    for item in value:
        tier = [item] if isinstance(item, str) else item
        if not isinstance(tier, list) or not tier or not all(isinstance(t, str) for t in tier):
            raise ConfigError(f"{dotted}: each entry is a name or a list of names")
        tiers.append(tuple(tier))
    return tuple(tiers)


def _check_redis(redis: RedisConfig) -> None:
    """Sentinel and TLS settings that cannot work, named by key."""
    if redis.sentinels and not redis.url:
        raise ConfigError("redis.url: required with redis.sentinels (scheme, password, database)")
    if redis.sentinels and not redis.sentinel_master:
        raise ConfigError("redis.sentinel_master: required with redis.sentinels")
    for address in redis.sentinels:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ConfigError(f"redis.sentinels: {address!r} is not host:port")
    if bool(redis.cert_file) != bool(redis.key_file):
        raise ConfigError("redis.cert_file: give redis.cert_file and redis.key_file together")
    tls_files = (("ca_file", redis.ca_file), ("cert_file", redis.cert_file))
    for key, path in (*tls_files, ("key_file", redis.key_file)):
        if path and not redis.url.reveal().startswith("rediss://"):
            raise ConfigError(f"redis.{key}: needs a rediss:// redis.url")
        if path and not os.path.isfile(path):
            raise ConfigError(f"redis.{key}: no such file: {path}")


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{dotted}: unknown key")
        if cls is Config and key == "assistants":
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a table of assistants")
            kwargs[key] = {
                name: _build(AssistantConfig, body, f"{dotted}.{name}.")
                for name, body in value.items()
            }
            continue
        if cls is Config and key == "upstreams":
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a table of upstreams")
            kwargs[key] = {
                name: _build(NamedUpstreamConfig, body, f"{dotted}.{name}.")
                for name, body in value.items()
            }
            continue
        if cls is AssistantConfig and key == "upstreams":
            kwargs[key] = _preference(value, dotted)
            continue
        kwargs[key] = _coerce(hints[key], value, dotted)
    try:
        result = cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded above
        raise ConfigError(f"{prefix.rstrip('.')}: {exc}") from None
    _check_ranges(result, prefix)
    return result


def _coerce(hint: Any, value: Any, dotted: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type) and hint is not Secret:
        return _build(hint, value, f"{dotted}.")
    if hint is Secret:
        if not isinstance(value, str):
            raise ConfigError(f"{dotted}: expected a string")
        return Secret(value)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, dotted)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(str(a) for a in args)
            raise ConfigError(f"{dotted}: must be one of {choices} (got {value!r})")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{dotted}: expected a list of strings")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{dotted}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{dotted}: expected a number of seconds or a decimal, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{dotted}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{dotted}: unsupported type")  # pragma: no cover


def _check_ranges(section: Any, prefix: str) -> None:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value < 0:
            raise ConfigError(f"{prefix}{f.name}: must not be negative (got {value})")
    if isinstance(section, ServerConfig) and not 0 <= section.port <= 65535:
        raise ConfigError(f"{prefix}port: must be between 0 and 65535 (got {section.port})")
    if isinstance(section, ServerConfig) and section.header_timeout_s <= 0:
        raise ConfigError(f"{prefix}header_timeout_s: must be above 0")
    if isinstance(section, LimitsConfig) and section.outbox_max_bytes < 1024:
        raise ConfigError(f"{prefix}outbox_max_bytes: must be at least 1024")
    if isinstance(section, AssistantConfig):
        if section.temperature is not None and not 0 <= section.temperature <= 2:
            raise ConfigError(f"{prefix}temperature: must be between 0 and 2")
        if section.top_p is not None and not 0 < section.top_p <= 1:
            raise ConfigError(f"{prefix}top_p: must be in (0, 1]")
        if section.thinking_budget is not None and section.thinking_budget < 1:
            raise ConfigError(f"{prefix}thinking_budget: must be at least 1")
    if (
        isinstance(section, LimitsConfig)
        and section.max_image_frame_bytes < section.max_frame_bytes
    ):
        raise ConfigError(f"{prefix}max_image_frame_bytes: must not be below max_frame_bytes")
    if isinstance(section, LimitsConfig):
        _check_pending_images(section, prefix)


def _check_pending_images(limits: LimitsConfig, prefix: str) -> None:
    if limits.pending_image_ttl_s <= 0:
        raise ConfigError(f"{prefix}pending_image_ttl_s: must be above 0")
    if limits.pending_images_cap < limits.max_images_per_message:
        raise ConfigError(
            f"{prefix}max_pending_images: must be at least max_images_per_message"
            f" ({limits.max_images_per_message}: a message may name that many uploads)"
        )
