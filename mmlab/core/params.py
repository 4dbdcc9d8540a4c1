"""Typed, validated parameter objects shared by experiments, simulations, the CLI and notebooks.

A parameter class is a frozen dataclass whose fields are declared with the helpers below
(`size`, `sizes`, `integer`, `real`, `seconds`, `choice`, `flag`, `text`). Values arrive as
Python objects (notebooks), strings (`-p KEY VALUE` on the command line) or YAML; each is coerced
and checked on construction, and a bad one raises `ParamError`, whose one-line message names the
parameter and the allowed range.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from mmlab.core.errors import MmlabError
from mmlab.core.units import PAGE_BYTES, format_bytes, parse_bytes, parse_seconds

T = TypeVar("T", bound="Params")


class ParamError(MmlabError, ValueError):
    """A parameter value outside what is allowed; `str()` is one line for the user (exit code 2)."""

    exit_code = 2

    def __init__(self, name: str, value: object, allowed: str, problem: str | None = None):
        self.name, self.value, self.allowed = name, value, allowed
        problem = problem or "is not allowed"
        label = name if isinstance(name, str) and name.isprintable() and name.strip() == name and name else repr(name)  # one line
        super().__init__(f"parameter {label}: {value!r} {problem}; allowed: {allowed}")


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one parameter is read and checked."""

    kind: str  # size | sizes | integer | integers | real | reals | seconds | choice | choices | flag | text
    help: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        if self.kind in ("choice", "choices"):
            return " | ".join(self.choices) + (" (comma-separated list)" if self.kind == "choices" else "")
        fmt: Callable[[float], str]
        if self.kind in ("size", "sizes"):
            fmt = format_bytes
        elif self.kind == "seconds":
            fmt = lambda v: f"{v:g}s"  # noqa: E731
        else:
            fmt = lambda v: f"{v:g}"  # noqa: E731
        if self.kind == "flag":
            return "true | false"
        if self.kind == "text":
            return "text"
        lo = fmt(self.lo) if self.lo is not None else "-inf"
        hi = fmt(self.hi) if self.hi is not None else "inf"
        many = " (a list, comma-separated)" if self.kind.endswith("s") and self.kind != "seconds" else ""
        kind = {"size": "a size", "sizes": "sizes", "integer": "a whole number", "integers": "whole numbers",
                "real": "a number", "reals": "numbers", "seconds": "seconds"}[self.kind]
        return f"{kind} from {lo} to {hi}{many}"


def _field(default: Any, spec: Spec) -> Any:
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata={"spec": spec})


def size(default: int | str, help: str, lo: int = PAGE_BYTES, hi: int = 1 << 50) -> Any:
    return _field(parse_bytes(default), Spec("size", help, "bytes", lo, hi))


def sizes(default: Sequence[int | str], help: str, lo: int = PAGE_BYTES, hi: int = 1 << 50) -> Any:
    return _field(tuple(parse_bytes(d) for d in default), Spec("sizes", help, "bytes", lo, hi))


def integer(default: int, help: str, lo: int | None = None, hi: int | None = None, unit: str = "") -> Any:
    return _field(default, Spec("integer", help, unit, lo, hi))


def integers(default: Sequence[int], help: str, lo: int | None = None, hi: int | None = None, unit: str = "") -> Any:
    return _field(tuple(default), Spec("integers", help, unit, lo, hi))


def real(default: float, help: str, lo: float | None = None, hi: float | None = None, unit: str = "") -> Any:
    return _field(default, Spec("real", help, unit, lo, hi))


def reals(default: Sequence[float], help: str, lo: float | None = None, hi: float | None = None, unit: str = "") -> Any:
    return _field(tuple(default), Spec("reals", help, unit, lo, hi))


def seconds(default: float, help: str, lo: float = 0.0, hi: float = 3600.0) -> Any:
    return _field(default, Spec("seconds", help, "s", lo, hi))


def choice(default: str, choices: Sequence[str], help: str) -> Any:
    return _field(default, Spec("choice", help, "", choices=tuple(choices)))


def choices(default: Sequence[str], options: Sequence[str], help: str) -> Any:
    return _field(tuple(default), Spec("choices", help, "", choices=tuple(options)))


def flag(default: bool, help: str) -> Any:
    return _field(default, Spec("flag", help))


def text(default: str, help: str) -> Any:
    return _field(default, Spec("text", help))


def _split(value: object) -> list[object]:
    if isinstance(value, str):
        stripped = value.strip().strip("[]")
        return [v.strip().strip("'\"") for v in stripped.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _number(value: object, integral: bool) -> float:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = float(value.strip()) if not integral or any(c in value for c in ".eE") else int(value.strip())
    if not isinstance(value, (int, float)):
        raise ValueError
    if not math.isfinite(value):
        raise ValueError
    if integral:
        if value != int(value):
            raise ValueError
        return int(value)
    return float(value)


def coerce(name: str, spec: Spec, value: object) -> Any:
    """The checked value of one parameter, or ParamError naming it and the allowed range."""
    allowed = spec.allowed()
    try:
        if spec.kind == "flag":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
                return value.strip().lower() in ("true", "1", "yes", "on")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if spec.kind == "text":
            if not isinstance(value, str):
                raise ValueError
            return value
        if spec.kind == "choice":
            if not isinstance(value, str) or value not in spec.choices:
                raise ValueError
            return value
        if spec.kind == "choices":
            items = _split(value)
            if not items or any(not isinstance(i, str) or i not in spec.choices for i in items):
                raise ValueError
            return tuple(items)
        many = spec.kind in ("sizes", "integers", "reals")
        items = _split(value) if many else [value]
        if not items:
            raise ParamError(name, value, allowed, "is empty")
        out = []
        for item in items:
            if spec.kind in ("size", "sizes"):
                v: float = parse_bytes(item)
            elif spec.kind == "seconds":
                v = parse_seconds(item)
                if not math.isfinite(v):
                    raise ValueError
            else:
                v = _number(item, integral=spec.kind in ("integer", "integers"))
            if (spec.lo is not None and v < spec.lo) or (spec.hi is not None and v > spec.hi):
                raise ParamError(name, value, allowed, "is out of range")
            out.append(v)
        return tuple(out) if many else out[0]
    except ParamError:
        raise
    except (ValueError, TypeError, OverflowError):
        raise ParamError(name, value, allowed, "is not valid") from None


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every parameter class: coerces and checks each field when constructed."""

    kind: ClassVar[str] = "params"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            spec = f.metadata.get("spec")
            if spec is not None:
                object.__setattr__(self, f.name, coerce(f.name, spec, getattr(self, f.name)))
        self.check()

    def check(self) -> None:
        """Cross-field checks; subclasses raise ParamError."""

    @classmethod
    def specs(cls) -> dict[str, Spec]:
        return {f.name: f.metadata["spec"] for f in dataclasses.fields(cls) if "spec" in f.metadata}

    @classmethod
    def from_mapping(cls: type[T], values: Mapping[str, object] | None = None) -> T:
        """Build from names and raw values; unknown names are a ParamError listing the known ones."""
        values = dict(values or {})
        known = cls.specs()
        for name in values:
            if name not in known:
                raise ParamError(name, values[name], ", ".join(sorted(known)) or "none", "is not a parameter of this experiment")
        return cls(**values)

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One dict per parameter: name, default, allowed range, unit, help (for `mmlab experiments`)."""
        out = []
        for f in dataclasses.fields(cls):
            spec = f.metadata.get("spec")
            if spec is None:
                continue
            default = f.default
            if spec.kind in ("size",):
                shown = format_bytes(default)
            elif spec.kind == "sizes":
                shown = ",".join(format_bytes(d) for d in default)
            elif isinstance(default, tuple):
                shown = ",".join(str(d) for d in default)
            else:
                shown = str(default)
            out.append({"name": f.name, "default": shown, "allowed": spec.allowed(), "unit": spec.unit, "help": spec.help})
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values (tuples as lists), stored with every run."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
