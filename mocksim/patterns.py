"""Value generators: turn a pattern spec into the physical value of each reading, reproducibly.

One :class:`ValueGenerator` drives one value of one sensor. Every random draw comes from its own
``random.Random(seed)``, with the seed derived from (fleet seed, device id, sensor key, value
type) by :func:`derive_seed`, so the same fleet seed gives the same values to the byte.

Normal variates use our own Box–Muller transform (two ``random()`` calls each, no cached second
variate) instead of ``Random.gauss``: every draw then consumes a known number of ``random()``
calls, which lets :meth:`ValueGenerator.restore` rebuild the exact generator state from a draw
count instead of checkpointing the Mersenne Twister's 2.5 KB state. A restored generator
continues the very sequence the uninterrupted one would have produced.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import cos, log, sin, sqrt
from types import MappingProxyType
from typing import Any, Final, Literal

from mocksim.catalog import ValueModel
from mocksim.errors import SpecError
from mocksim.spec import (
    ConstantPattern,
    DriftPattern,
    PatternSpec,
    RandomPattern,
    SinePattern,
    SpikePattern,
    StuckPattern,
    WalkPattern,
)

__all__ = ["ValueGenerator", "derive_seed"]

Kind = Literal["constant", "random", "drift", "sine", "walk", "spike", "stuck"]

TAU: Final = 2.0 * math.pi
#: The default pattern (no pattern given) walks with σ = this fraction of the bounds' span.
DEFAULT_WALK_STEP_FRACTION: Final = 0.001
DEFAULT_WALK_REVERSION: Final = 0.05
#: random() calls skipped per getrandbits() call on restore (each random() eats 64 bits).
_SKIP_CHUNK: Final = 1 << 16
_STATE_KEYS: Final = frozenset({"ticks", "draws", "last", "plast", "pos", "direction", "frozen"})


def derive_seed(fleet_seed: int, device_id: str, sensor_key: str, value_type: str) -> int:
    """The seed of one value's generator, stable across processes and Python versions.

    ``hash()`` is salted per process, so this uses blake2b with a personalisation tag that keeps
    pattern seeds apart from other seeds derived from the same inputs. Returns a 64-bit int.
    """
    text = f"{fleet_seed}\x1f{device_id}\x1f{sensor_key}\x1f{value_type}".encode()
    digest = hashlib.blake2b(text, digest_size=8, person=b"mocksim.pattern").digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class _Plan:
    """A pattern resolved against a value model and bounds: everything the hot path reads."""

    kind: Kind
    lo: float
    hi: float
    centre: float  # where the pattern sits: value / base / start, resolved and clamped
    anchor: float | None  # the pattern's own explicit value/base/start (retune continuity)
    step: float = 0.0
    noise: float = 0.0
    spread: float = 0.0  # random: ± range; sine: amplitude; spike: magnitude
    omega: float = 0.0  # sine: 2π / period_s
    phase_s: float = 0.0
    reversion: float = 0.0
    probability: float = 0.0


def _finite(field: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise SpecError(field, value, "a finite number")


def _bounds(
    pattern: PatternSpec | None, model: ValueModel, lo: float | None, hi: float | None
) -> tuple[float, float]:
    """Clamp bounds: the pattern's own min/max, else the sensor's, else the physical range."""
    _finite("min", lo)
    _finite("max", hi)
    p_lo = pattern.min if pattern is not None else None
    p_hi = pattern.max if pattern is not None else None
    _finite("pattern.min", p_lo)
    _finite("pattern.max", p_hi)
    low = p_lo if p_lo is not None else lo if lo is not None else model.phys_min
    high = p_hi if p_hi is not None else hi if hi is not None else model.phys_max
    if low > high:
        field = "pattern.min" if p_lo is not None else "min"
        raise SpecError(field, low, f"a number <= the effective max ({high})")
    return low, high


def _compile(
    pattern: PatternSpec | None, model: ValueModel, lo: float | None, hi: float | None
) -> _Plan:
    """Resolve defaults and bounds once, so that ``next()`` does no lookups; raises SpecError."""
    low, high = _bounds(pattern, model, lo, hi)
    # The catalogue default, unless the user's bounds exclude it: then the middle of the bounds.
    default = model.default if low <= model.default <= high else (low + high) / 2.0

    def centre(anchor: float | None, field: str) -> float:
        _finite(field, anchor)
        x = default if anchor is None else anchor
        return low if x < low else high if x > high else x

    if pattern is None:
        return _Plan(
            "walk",
            low,
            high,
            default,
            None,
            step=(high - low) * DEFAULT_WALK_STEP_FRACTION,
            reversion=DEFAULT_WALK_REVERSION,
        )
    if isinstance(pattern, ConstantPattern):
        return _Plan("constant", low, high, centre(pattern.value, "pattern.value"), pattern.value)
    if isinstance(pattern, RandomPattern):
        return _Plan(
            "random",
            low,
            high,
            centre(pattern.base, "pattern.base"),
            pattern.base,
            spread=pattern.range,
        )
    if isinstance(pattern, DriftPattern):
        return _Plan(
            "drift",
            low,
            high,
            centre(pattern.start, "pattern.start"),
            pattern.start,
            step=pattern.step,
            noise=pattern.noise,
        )
    if isinstance(pattern, SinePattern):
        return _Plan(
            "sine",
            low,
            high,
            centre(pattern.base, "pattern.base"),
            pattern.base,
            spread=pattern.amplitude,
            omega=TAU / pattern.period_s,
            phase_s=pattern.phase_s,
            noise=pattern.noise,
        )
    if isinstance(pattern, WalkPattern):
        return _Plan(
            "walk",
            low,
            high,
            centre(pattern.base, "pattern.base"),
            pattern.base,
            step=pattern.step,
            reversion=pattern.reversion,
            noise=pattern.noise,
        )
    if isinstance(pattern, SpikePattern):
        return _Plan(
            "spike",
            low,
            high,
            centre(pattern.base, "pattern.base"),
            pattern.base,
            noise=pattern.noise,
            spread=pattern.magnitude,
            probability=pattern.probability,
        )
    if isinstance(pattern, StuckPattern):
        return _Plan("stuck", low, high, centre(pattern.value, "pattern.value"), pattern.value)
    raise SpecError(
        "pattern",
        getattr(pattern, "kind", pattern),
        ("constant", "drift", "random", "sine", "spike", "stuck", "walk"),
    )


class ValueGenerator:
    """The physical values of one sensor value, one per reading, from a pattern spec.

    Results are clamped to the bounds (the pattern's ``min``/``max``, else the sensor's ``lo``/
    ``hi``, else the catalogue's physical range). A manual override wins over the pattern and is
    not clamped, so a user can push a value out of range to provoke ``suspect`` quality; while
    it is set the pattern does not advance, and clearing it resumes the pattern where it was.

    Args:
        pattern: what the values look like; None walks gently around the catalogue default.
        model: the catalogue entry of this value (physical range, plausible default).
        seed: seed of this generator's ``random.Random`` (see :func:`derive_seed`).
        lo: the sensor-level lower clamp bound, if any.
        hi: the sensor-level upper clamp bound, if any.

    Raises:
        SpecError: the bounds contradict each other or a value is not finite.
    """

    __slots__ = (
        "_direction",
        "_draws",
        "_frozen",
        "_gen",  # the kernel of the current kind, called as _gen(self, t)
        "_last",
        "_model",
        "_override",
        "_pattern",
        "_plan",
        "_plast",
        "_pos",
        "_rng",
        "_seed",
        "_ticks",
    )

    def __init__(
        self,
        pattern: PatternSpec | None,
        model: ValueModel,
        *,
        seed: int,
        lo: float | None = None,
        hi: float | None = None,
    ) -> None:
        self._model = model
        self._seed = seed
        self._rng = random.Random(seed)
        self._draws = 0  # random() calls so far: restore() replays exactly this many
        self._ticks = 0  # readings produced, overrides included
        self._last: float | None = None  # last value returned, override included
        self._plast: float | None = None  # last value the pattern produced
        self._pos: float | None = None  # noise-free drift/walk position; None: not started
        self._direction = 1  # drift: +1 moves by +step, -1 by -step
        self._frozen: float | None = None  # stuck: the frozen value once known
        self._override: float | None = None
        self._pattern = pattern
        self._plan = _compile(pattern, model, lo, hi)
        self._gen = _KERNELS[self._plan.kind]
        if self._plan.kind == "stuck":
            self._frozen = self._plan.anchor

    # ------------------------------------------------------------------ public

    @property
    def pattern(self) -> PatternSpec | None:
        """The pattern spec in force (None: the default gentle walk)."""
        return self._pattern

    @property
    def bounds(self) -> tuple[float, float]:
        """The effective clamp bounds ``(lo, hi)``."""
        return self._plan.lo, self._plan.hi

    @property
    def last(self) -> float | None:
        """The last value :meth:`next` returned (an override included); None before the first."""
        return self._last

    @property
    def ticks(self) -> int:
        """How many readings this generator has produced."""
        return self._ticks

    @property
    def override(self) -> float | None:
        """The manual override in force, or None."""
        return self._override

    def set_override(self, value: float | None) -> None:
        """Make every reading ``value`` (unclamped) until cleared with None.

        Raises:
            SpecError: ``value`` is not a finite number.
        """
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError("override", value, "a finite number or None")
            _finite("override", value)
            value = float(value)
        self._override = value

    def next(self, t: float) -> float:
        """The physical value of the next reading at device time ``t`` (seconds)."""
        self._ticks += 1
        if self._override is not None:
            self._last = self._override
            return self._override
        x = self._gen(self, t)
        self._plast = x
        self._last = x
        return x

    def retune(
        self, pattern: PatternSpec | None, *, lo: float | None = None, hi: float | None = None
    ) -> None:
        """Switch to another pattern while running, without a jump where none is asked for.

        ``lo``/``hi`` replace the sensor-level bounds (None: no sensor-level bound), as in the
        constructor. A drift or walk continues from the current value unless the new pattern
        names an explicit ``start``/``base`` that differs from the one the old pattern named;
        then it restarts there. A drift keeps its direction. ``StuckPattern()`` without a value
        freezes the value the pattern produced last. The random sequence carries on.

        Raises:
            SpecError: as the constructor; the generator is unchanged then.
        """
        plan = _compile(pattern, self._model, lo, hi)
        old = self._plan
        if plan.kind in ("drift", "walk"):
            restart = plan.anchor is not None and plan.anchor != old.anchor
            here = self._pos if old.kind in ("drift", "walk") else self._plast
            if restart or here is None:
                self._pos = None
                self._direction = 1
            else:
                self._pos = plan.lo if here < plan.lo else plan.hi if here > plan.hi else here
        else:
            self._pos = None
        if plan.kind == "stuck":
            self._frozen = plan.anchor if plan.anchor is not None else self._plast
        else:
            self._frozen = None
        self._pattern = pattern
        self._plan = plan
        self._gen = _KERNELS[plan.kind]

    def state(self) -> dict[str, float | int | None]:
        """What a checkpoint keeps to continue exactly where this generator is (JSON-safe).

        The pattern and the override are configuration, not state: the owner stores those.
        """
        return {
            "ticks": self._ticks,
            "draws": self._draws,
            "last": self._last,
            "plast": self._plast,
            "pos": self._pos,
            "direction": self._direction,
            "frozen": self._frozen,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state` taken from a generator with the same seed and pattern.

        The random sequence is rebuilt by replaying ``draws`` draws, so the values that follow
        are exactly those the checkpointed generator would have produced next.

        Raises:
            SpecError: the state is malformed; the generator is unchanged then.
        """
        unknown = set(state) - _STATE_KEYS
        if unknown:
            raise SpecError("state", sorted(unknown)[0], sorted(_STATE_KEYS))
        ticks = _count(state, "ticks")
        draws = _count(state, "draws")
        last = _opt_float(state, "last")
        plast = _opt_float(state, "plast")
        pos = _opt_float(state, "pos")
        frozen = _opt_float(state, "frozen")
        direction = state.get("direction", 1)
        if direction not in (1, -1) or isinstance(direction, bool):
            raise SpecError("state.direction", direction, (1, -1))
        rng = random.Random(self._seed)
        left = draws
        while left > 0:  # random() consumes two 32-bit words; getrandbits skips them in C
            n = min(left, _SKIP_CHUNK)
            rng.getrandbits(64 * n)
            left -= n
        self._rng = rng
        self._draws = draws
        self._ticks = ticks
        self._last = last
        self._plast = plast
        self._pos = pos
        self._direction = int(direction)
        if self._plan.kind == "stuck":
            self._frozen = frozen if frozen is not None else self._plan.anchor
        else:
            self._frozen = None

    def __repr__(self) -> str:
        p = self._plan
        return (
            f"ValueGenerator({p.kind}, bounds=({p.lo}, {p.hi}), ticks={self._ticks}, "
            f"last={self._last}, override={self._override})"
        )

    # ------------------------------------------------------------------ hot path

    def _gauss(self) -> float:
        """A standard normal variate from exactly two draws (Box–Muller, no cached twin)."""
        r = self._rng.random
        self._draws += 2
        return sqrt(-2.0 * log(1.0 - r())) * cos(TAU * r())

    def _constant(self, t: float) -> float:
        return self._plan.centre

    def _stuck(self, t: float) -> float:
        p = self._plan
        x = self._frozen
        if x is None:
            x = self._frozen = p.centre
        return p.lo if x < p.lo else p.hi if x > p.hi else x

    def _random(self, t: float) -> float:
        p = self._plan
        self._draws += 1
        x = p.centre + p.spread * (2.0 * self._rng.random() - 1.0)
        return p.lo if x < p.lo else p.hi if x > p.hi else x

    def _drift(self, t: float) -> float:
        p = self._plan
        pos = self._pos
        if pos is None:
            pos = p.centre
        else:
            pos += self._direction * p.step
            # Bounce: reflect at a bound and turn round; clamp guards a step wider than the span.
            if pos > p.hi:
                pos = max(p.lo, 2.0 * p.hi - pos)
                self._direction = -self._direction
            elif pos < p.lo:
                pos = min(p.hi, 2.0 * p.lo - pos)
                self._direction = -self._direction
        self._pos = pos
        if p.noise:
            x = pos + p.noise * self._gauss()
            return p.lo if x < p.lo else p.hi if x > p.hi else x
        return pos

    def _sine(self, t: float) -> float:
        p = self._plan
        x = p.centre + p.spread * sin(p.omega * (t + p.phase_s))
        if p.noise:
            x += p.noise * self._gauss()
        return p.lo if x < p.lo else p.hi if x > p.hi else x

    def _walk(self, t: float) -> float:
        p = self._plan
        pos = self._pos
        if pos is None:
            pos = p.centre
        else:
            if p.step:
                pos += p.step * self._gauss()
            pos += p.reversion * (p.centre - pos)
            pos = p.lo if pos < p.lo else p.hi if pos > p.hi else pos
        self._pos = pos
        if p.noise:
            x = pos + p.noise * self._gauss()
            return p.lo if x < p.lo else p.hi if x > p.hi else x
        return pos

    def _spike(self, t: float) -> float:
        p = self._plan
        r = self._rng.random
        self._draws += 1
        spike = r() < p.probability
        x = p.centre
        if p.noise:
            x += p.noise * self._gauss()
        if spike:
            self._draws += 1
            x += p.spread if r() < 0.5 else -p.spread
        return p.lo if x < p.lo else p.hi if x > p.hi else x


# Unbound kernels, not bound methods: a bound method kept on the instance would make a cycle.
_KERNELS: Final[MappingProxyType[Kind, Callable[[ValueGenerator, float], float]]] = (
    MappingProxyType(
        {
            "constant": ValueGenerator._constant,
            "random": ValueGenerator._random,
            "drift": ValueGenerator._drift,
            "sine": ValueGenerator._sine,
            "walk": ValueGenerator._walk,
            "spike": ValueGenerator._spike,
            "stuck": ValueGenerator._stuck,
        }
    )
)


def _count(state: Mapping[str, Any], key: str) -> int:
    v = state.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise SpecError(f"state.{key}", v, "an int >= 0")
    return v


def _opt_float(state: Mapping[str, Any], key: str) -> float | None:
    v = state.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpecError(f"state.{key}", v, "a finite number or None")
    return float(v)
