"""The simulator's deterministic replies, and the directives that shape them.

A reply depends only on the prompt (the last user message, directives removed) and the
options. It echoes the prompt verbatim, then Markdown generated from a seeded RNG with
multi-byte text (Chinese, accents, astral-plane emoji), split into exactly ``tokens`` steps.

Directives are ``sim:key=value`` words in the last user message, or an ``X-Simulator:
key=value ...`` header (which wins). See :class:`SimOptions` for the keys.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, fields, replace

_DIRECTIVE = re.compile(r"(?<!\S)sim:([a-z_]+)=(\S+)")

FAULTS_BEFORE = {"401", "403", "429", "500", "400filter"}
FAULTS_DURING = {"error", "throttle", "filter", "drop", "stall", "malformed"}
_SIGNED = {"fault_at", "reasoning"}  # int options where -1 means "the default rule"


@dataclass(frozen=True, slots=True)
class SimOptions:
    """A request's ``sim:`` directives, parsed: pace, size, faults and reasoning."""

    prompt: str = ""
    tokens: int = 60  # number of steps
    delay_ms: float = 20.0  # between steps
    first_delay_ms: float = 0.0  # before the first event
    chars: int = 0  # target reply length (0: natural); steps grow to fit
    fault: str = ""  # see FAULTS_BEFORE and FAULTS_DURING
    fault_at: int = -1  # the step after which a mid-stream fault happens (-1: half-way)
    split: str = ""  # write the body in pieces of this many bytes, or "odd"
    reasoning: int = -1  # reasoning steps before the answer (-1: 4 when thinking is on, else 0)
    reasoning_field: str = ""  # OpenAI stream: reasoning_content or reasoning (default: by style)
    only: str = ""  # the one DashScope endpoint serving this model: text or multimodal
    fail_times: int = 0  # the first N requests with this prompt get 429

    @property
    def fault_step(self) -> int:
        return self.fault_at if self.fault_at >= 0 else self.tokens // 2


@dataclass(frozen=True, slots=True)
class SimLimits:
    """The most one request may ask of the simulator: directives beyond a bound are cut to
    it, and ``split`` is ignored (one byte a write costs a write per byte). The offline demo,
    open to any visitor, serves with :data:`DEMO_LIMITS`; ``fake-upstream`` and tests with
    none (every directive's full range)."""

    max_chars: int = 20_000
    max_tokens: int = 2_000
    min_delay_ms: float = 5.0
    max_first_delay_ms: float = 10_000.0
    max_reasoning: int = 200
    max_fail_times: int = 3


DEMO_LIMITS = SimLimits()


def capped(options: SimOptions, limits: SimLimits) -> SimOptions:
    """``options`` within ``limits``."""
    return replace(
        options,
        tokens=min(options.tokens, limits.max_tokens),
        chars=min(options.chars, limits.max_chars),
        delay_ms=max(options.delay_ms, limits.min_delay_ms),
        first_delay_ms=min(options.first_delay_ms, limits.max_first_delay_ms),
        reasoning=min(options.reasoning, limits.max_reasoning),
        fail_times=min(options.fail_times, limits.max_fail_times),
        split="",
    )


def parse_options(prompt: str, header: str | None) -> SimOptions:
    """Options from the prompt's ``sim:`` words, overridden by the ``X-Simulator`` header."""
    values = dict(_DIRECTIVE.findall(prompt))
    if header:
        for word in header.split():
            key, _, value = word.partition("=")
            if value:
                values[key] = value
    clean = " ".join(_DIRECTIVE.sub("", prompt).split())
    options = SimOptions(prompt=clean)
    types = {f.name: f.type for f in fields(SimOptions)}
    changes: dict[str, object] = {}
    for key, value in values.items():
        kind = types.get(key)
        try:
            if kind == "int":
                changes[key] = max(0, int(value)) if key not in _SIGNED else int(value)
            elif kind == "float":
                changes[key] = max(0.0, float(value))
            elif kind == "str" and key != "prompt":
                changes[key] = value
        except ValueError:
            continue
    options = replace(options, **changes)  # type: ignore[arg-type]
    if options.tokens < 1:
        options = replace(options, tokens=1)
    return options


_WORDS = [
    *("stream", "gateway", "token", "delta", "reply", "model", "cursor", "socket", "buffer"),
    *("frame", "resume", "window", "latency", "backpressure", "viewer", "room", "history"),
    *("prompt", "answer", "step"),
]
_MULTI = ["你好，世界", "流式输出", "café", "naïve", "Größe", "🚀", "✨", "𝄞", "日本語", "😀"]


def reply_text(prompt: str, options: SimOptions, preface: str = "") -> str:
    """The whole reply for a prompt (what every mode's steps concatenate to)."""
    return "".join(reply_steps(prompt, options, preface))


def reply_steps(prompt: str, options: SimOptions, preface: str = "") -> list[str]:
    """The reply split into exactly ``options.tokens`` non-empty steps; ``preface`` (the
    images acknowledged, see :func:`image_note`) opens it."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    rng = random.Random(seed)  # noqa: S311 - deterministic text, not crypto
    n = options.tokens
    if options.chars:
        return _even_steps(preface + _filler(rng, options.chars, prompt), n)
    body = preface + _markdown(rng, prompt)
    pieces = _tokenize(body)
    while len(pieces) < n:
        pieces.extend(_tokenize(" " + _sentence(rng)))
    if len(pieces) > n:
        pieces = [*pieces[: n - 1], "".join(pieces[n - 1 :])]
    return pieces


def _markdown(rng: random.Random, prompt: str) -> str:
    def words(k: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(k))

    return (
        f"You said: «{prompt}».\n\n"
        f"Here is a **short** answer about {words(3)} ({rng.choice(_MULTI)}).\n\n"
        f"- {words(2)} {rng.choice(_MULTI)}\n"
        f"- `{rng.choice(_WORDS)}()` then {words(2)}\n\n"
        "```python\n"
        f"def {rng.choice(_WORDS)}(x):\n"
        "    return x * 2  # 🚀\n"
        "```\n\n"
        f"你好，世界 — {words(4)} 😀."
    )


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS + _MULTI) for _ in range(rng.randint(4, 9))) + "."


def _tokenize(text: str) -> list[str]:
    """Words with their leading space; multi-byte runs split into 1-2 character steps."""
    out: list[str] = []
    for word in re.findall(r"\s*\S+|\s+", text):
        if word.isascii() or len(word) <= 2:
            out.append(word)
        else:
            out.extend(word[i : i + 2] for i in range(0, len(word), 2))
    return out


def _filler(rng: random.Random, chars: int, prompt: str) -> str:
    head = f"You said: «{prompt}».\n\n"
    unit = "".join(_sentence(rng) + (" 你好🚀\n" if i % 3 == 0 else " ") for i in range(64))
    repeat = (chars - len(head)) // len(unit) + 1
    return (head + unit * repeat)[: max(chars, len(head))]


def _even_steps(text: str, n: int) -> list[str]:
    size, extra = divmod(len(text), n)
    if size == 0:
        return [text[i] for i in range(len(text))] or [" "]
    steps, pos = [], 0
    for i in range(n):
        end = pos + size + (1 if i < extra else 0)
        steps.append(text[pos:end])
        pos = end
    return steps


def image_note(images: list[tuple[str, int | None]]) -> str:
    """How a reply acknowledges the images of the prompt: ``(media type, decoded bytes)``
    each, ``None`` bytes for a URL: "I see 2 images (image/png, 1.2 KB; https URL).\n\n"."""
    if not images:
        return ""
    parts = [
        f"{kind}, {size / 1024:.1f} KB" if size is not None else "https URL"
        for kind, size in images
    ]
    noun = "image" if len(images) == 1 else "images"
    return f"I see {len(images)} {noun} ({'; '.join(parts)}).\n\n"


def continue_from(steps: list[str], prefix: str) -> list[str]:
    """Partial mode: the steps that follow ``prefix`` in a reply of ``steps``. A step the
    prefix ends inside is cut; a prefix that is not the reply's start is followed from where
    the two part."""
    text = "".join(steps)
    common = 0
    limit = min(len(prefix), len(text))
    while common < limit and prefix[common] == text[common]:
        common += 1
    pos = 0
    for index, step in enumerate(steps):
        end = pos + len(step)
        if end > common:
            return [step[common - pos :], *steps[index + 1 :]]
        pos = end
    return []
