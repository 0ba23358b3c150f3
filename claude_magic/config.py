"""Config: the defaults of every turn (backend, model, limits), prompt caching, the context
window policy and the budget. Holds no secret: the API key and base URL are read from
``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL`` at each turn. Imports no heavy module."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .backends import BACKEND_CLASSES
from .errors import BackendUnavailable

DEFAULT_MODEL = "claude-sonnet-4-6"
BACKENDS = ("auto", *BACKEND_CLASSES)
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
CACHE_TTLS = ("5m", "1h")
CONTEXT_POLICIES = ("warn", "compact", "truncate")
_ALIASES = {"claude_code": "claude-code", "cli": "claude-code", "api": "anthropic"}


@dataclass
class Config:
    """Defaults for every turn, and backend options.

    ``backend``: ``auto`` (``anthropic`` when ``ANTHROPIC_API_KEY`` is set, else the offline
    ``echo``), ``anthropic``, ``claude-code``, ``replay`` or ``echo``. ``timeout`` is in
    seconds (per HTTP read for ``anthropic``, per turn for ``claude-code``); ``retries`` is the
    SDK's retry count. ``base_url`` overrides ``ANTHROPIC_BASE_URL`` for ``anthropic``.
    Claude Code: ``claude_binary``, ``permission_mode``, ``allowed_tools``, ``max_turns``,
    ``cwd`` (default: the current directory), ``fork_session``. Replay: ``replay_source``.

    Context (``anthropic``): ``cache`` is the prompt-cache lifetime, ``"5m"`` (default),
    ``"1h"`` or ``None`` (no ``cache_control``). ``context`` is what happens when a request
    nears the model's window: ``"warn"`` (default), ``"compact"`` or ``"truncate"``;
    ``context_window`` overrides the model's window (tokens); ``count_tokens=True`` asks the
    API's ``count_tokens`` endpoint instead of estimating. ``budget_usd``: a turn in a session
    whose recorded cost reached it is refused (a session's ``budget_usd`` setting wins).
    ``keep_last``: answered turns that automatic compaction keeps verbatim.
    ``thinking``: extended thinking (``anthropic``): None (off), a budget of at least 1,024
    tokens, or ``"adaptive"`` on models that support it.
    """

    backend: str = "auto"
    model: str = DEFAULT_MODEL
    max_tokens: int = 4096
    timeout: float = 600.0
    retries: int = 2
    base_url: str | None = None
    claude_binary: str | None = None
    permission_mode: str = "default"
    allowed_tools: list[str] | None = None
    max_turns: int | None = None
    cwd: str | None = None
    fork_session: bool = True
    replay_source: str | None = None
    cache: str | None = "5m"
    context: str = "warn"
    context_window: int | None = None
    count_tokens: bool = False
    budget_usd: float | None = None
    keep_last: int = 2
    thinking: int | str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` for a setting that cannot work."""
        if _ALIASES.get(self.backend, self.backend) not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of "
                             f"{', '.join(BACKENDS)}")
        if self.permission_mode not in PERMISSION_MODES:
            raise ValueError(f"permission_mode {self.permission_mode!r} is not one of "
                             f"{', '.join(PERMISSION_MODES)}")
        for name in ("max_tokens", "timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.retries < 0 or (self.max_turns is not None and self.max_turns < 1):
            raise ValueError("retries must be >= 0 and max_turns >= 1")
        if isinstance(self.allowed_tools, str):
            self.allowed_tools = [self.allowed_tools]
        self._validate_context()
        self.thinking = check_thinking(self.thinking)

    def _validate_context(self) -> None:
        if self.cache in ("", "none", "off"):
            self.cache = None
        if self.cache is not None and self.cache not in CACHE_TTLS:
            raise ValueError(f"cache must be '5m', '1h' or None, got {self.cache!r}")
        if self.context not in CONTEXT_POLICIES:
            raise ValueError(f"context must be one of {', '.join(CONTEXT_POLICIES)}, "
                             f"got {self.context!r}")
        if self.context_window is not None and (
                type(self.context_window) is not int or self.context_window < 1):
            raise ValueError(f"context_window must be a positive int or None, "
                             f"got {self.context_window!r}")
        self.budget_usd = check_budget(self.budget_usd, "budget_usd")
        if type(self.keep_last) is not int or self.keep_last < 0:
            raise ValueError(f"keep_last must be an int, 0 or more, got {self.keep_last!r}")

    @property
    def api_key_set(self) -> bool:
        """Whether ``ANTHROPIC_API_KEY`` is set now (the key itself is never kept)."""
        return bool(os.environ.get("ANTHROPIC_API_KEY"))

    def resolve_backend(self, name: str | None = None) -> tuple[str, str | None]:
        """``(backend, offline_reason)`` for ``name`` (default: this config's backend);
        ``auto`` becomes ``anthropic`` or, without a key, ``echo`` with the reason."""
        resolved = backend_name(name or self.backend)
        if resolved != "auto":
            return resolved, None
        if self.api_key_set:
            return "anthropic", None
        return "echo", "ANTHROPIC_API_KEY is not set"


def check_budget(value: object, name: str = "budget_usd") -> float | None:
    """A budget in dollars: ``None`` (no budget) or a finite number >= 0; else ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of dollars, 0 or more (or None for no "
                         f"budget), got {value!r}")
    return float(value)


MIN_THINKING = 1024


def check_thinking(value: object) -> int | str | None:
    """An extended-thinking setting: None, an int budget >= 1,024, or ``"adaptive"``."""
    if value is None or value == "adaptive":
        return value  # type: ignore[return-value]
    if type(value) is not int or value < MIN_THINKING:
        raise ValueError(f"thinking must be None, 'adaptive' or a budget of at least "
                         f"{MIN_THINKING:,} tokens, got {value!r}")
    return value


def backend_name(name: str) -> str:
    """The canonical backend name for ``name`` (aliases allowed); BackendUnavailable if none."""
    resolved = _ALIASES.get(name, name)
    if resolved not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return resolved
