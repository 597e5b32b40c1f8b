"""A project's JSON config: validated against the config dataclass its kind registers.

Labeling knows no kind's keys, only its own (:class:`LabelingConfig`, which every kind's
dataclass extends). The app that trains a kind of project registers a frozen dataclass for
it from its ``AppConfig.ready()`` (``register_config``); each field is declared with
:func:`setting`, which carries the field's check. ``validate_project_config``
fills in defaults and raises :class:`InvalidConfig` naming the first bad key; a dataclass
may add checks across keys in a ``check()`` method. Clients and benchmarks rely on the keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from core.errors import InvalidConfig
from labeling.feedback import DEFAULT_CRITERIA, FEEDBACK_KEYS, check_criteria

MAX_K = 8  # the most candidates a comparison may rank

Check = Callable[[Any], str | None]  # an error message, or None when the value is fine
T = TypeVar("T")

_CONFIG_TYPES: dict[str, type] = {}


def setting(default: Any, check: Check) -> Any:
    """A config field: its default and its check (mutable defaults are copied)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"check": check}
        )
    return dataclasses.field(default=default, metadata={"check": check})


def setting_group(keys: dict[str, Check]) -> Any:
    """A config field holding an object of optional overrides (say an optimiser's
    hyperparameters), each key with its check; a bad one is named ``field.key``."""
    return dataclasses.field(default_factory=dict, metadata={"check": _is_object, "keys": keys})


def _is_object(v: Any) -> str | None:
    return None if isinstance(v, dict) else f"must be a JSON object, got {v!r}"


def _both_or_neither(value: dict, keys: tuple[str, ...]) -> str | None:
    if value and (missing := [k for k in keys if k not in value]):
        return f"needs {' and '.join(keys)} (or is empty to switch it off); missing {missing[0]}"
    return None


def _check_group(name: str, value: dict, keys: dict[str, Check]) -> None:
    for key, item in value.items():
        if key not in keys:
            raise InvalidConfig(
                f"{name}.{key}", f"unknown key; known keys: {', '.join(sorted(keys))}"
            )
        if error := keys[key](item):
            raise InvalidConfig(f"{name}.{key}", error)


def register_config(kind: str, config_type: type) -> None:
    """Validate configs of projects of ``kind`` against ``config_type`` (idempotent), a
    subclass of LabelingConfig: labeling reads its keys from every project."""
    if not issubclass(config_type, LabelingConfig):
        raise TypeError(f"{config_type.__name__} must extend labeling.config.LabelingConfig")
    _CONFIG_TYPES[kind] = config_type


def parse_config(config_type: type[T], raw: Any, *, kind: str = "") -> T:
    """``raw`` (a JSON object) as a ``config_type``, or InvalidConfig naming the bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidConfig("(root)", "must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    for name in raw:
        if name not in fields:
            raise InvalidConfig(
                name,
                f"unknown key for a {kind or config_type.__name__} project; "
                f"known keys: {', '.join(sorted(fields))}",
            )
    for name, field in fields.items():
        if name in raw and (error := field.metadata["check"](raw[name])):
            raise InvalidConfig(name, error)
        if name in raw and "keys" in field.metadata:
            _check_group(name, raw[name], field.metadata["keys"])
    config = config_type(**raw)
    for name, field in fields.items():  # the defaults pass their own checks too
        if name not in raw and (error := field.metadata["check"](getattr(config, name))):
            raise InvalidConfig(name, error)
    if hasattr(config, "check"):
        config.check()
    return config


def config_type_of(kind: str) -> type:
    if kind not in _CONFIG_TYPES:
        raise InvalidConfig("kind", f"unknown project kind {kind!r}")
    return _CONFIG_TYPES[kind]


def project_config(kind: str, raw: Any, *, checked: bool = True) -> Any:
    """The typed config of a project of ``kind`` (InvalidConfig when ``raw`` is bad). With
    ``checked`` False, a stored config (validated when it was saved) is read as it is,
    without running the checks again: cheap enough for every request."""
    config_type = config_type_of(kind)
    if not checked:
        names = {f.name for f in dataclasses.fields(config_type)}
        return config_type(**{k: v for k, v in (raw or {}).items() if k in names})
    return parse_config(config_type, raw, kind=kind)


def validate_project_config(kind: str, raw: Any) -> dict[str, Any]:
    """Return ``raw`` with defaults filled in, or raise InvalidConfig naming the bad key."""
    return dataclasses.asdict(project_config(kind, raw))


# --- checks the config dataclasses use --------------------------------------------------------
def int_in(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer from {lo} to {hi}, got {v!r}"
        return None

    return check


def float_in(lo: float, hi: float, *, open_low: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok:
            ok = (lo < v if open_low else lo <= v) and v <= hi
        if not ok:
            bracket = "(" if open_low else "["
            return f"must be a number in {bracket}{lo}, {hi}], got {v!r}"
        return None

    return check


def int_at_least(lo: int) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            return f"must be an integer of at least {lo}, got {v!r}"
        return None

    return check


def one_of(*options: str) -> Check:
    def check(v: Any) -> str | None:
        if v not in options:
            return f"must be one of {', '.join(options)}; got {v!r}"
        return None

    return check


def is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def optional(check: Check) -> Check:
    """``check``, or null."""

    def checked(v: Any) -> str | None:
        return None if v is None else check(v)

    return checked


optional_seed = optional(int_in(0, 2**31 - 1))


# --- the keys labeling reads, in every kind's config ---------------------------------------
@dataclasses.dataclass(frozen=True)
class LabelingConfig:
    """What every project's config says about labeling itself; a kind's config extends it."""

    # How long after answering a comparison an annotator may still change the answer
    # (PUT /api/comparisons/{id}/judgement/); 0 switches revising off.
    revise_window_s: int = setting(600, int_at_least(0))
    # {"gold": n, "min_accuracy": x}: a member first gets n gold comparisons, and below x
    # right gets no more (labeling/qualification.py); {} (the default) switches it off.
    qualification: dict = dataclasses.field(
        default_factory=dict,
        metadata={
            "check": lambda v: _is_object(v) or _both_or_neither(v, ("gold", "min_accuracy")),
            "keys": {"gold": int_in(1, 1000), "min_accuracy": float_in(0.0, 1.0)},
        },
    )
    # The level the dashboard forecasts labels for: a reward model's held-out accuracy in
    # (0, 1) for text and trajectory projects, a regret ≥ 0 for tabular ones; null: none.
    label_target: float | None = setting(None, optional(float_in(0.0, 1e9)))
    # What an answer carries beside its choice (labeling/feedback.py): {"strength",
    # "ratings", "critique", "edit": "optional" | "required", "both_bad": bool}; {} none.
    feedback: dict = setting_group(FEEDBACK_KEYS)
    # The rated criteria and their weights in the policy's reward (labeling/feedback.py).
    criteria: list = setting(DEFAULT_CRITERIA, check_criteria)


def revise_window_s(kind: str, raw: Any) -> int:
    """The revise window of a project of ``kind`` whose stored config is ``raw``."""
    return project_config(kind, raw, checked=False).revise_window_s


def qualification_of(raw: Any) -> dict:
    """The qualification ({"gold", "min_accuracy"}, or {} for none) of a stored config
    (validated when it was saved): read without building the config, on every ``next``."""
    return (raw or {}).get("qualification") or {}
