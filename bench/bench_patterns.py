"""µs per value of each pattern kind (ValueGenerator.next), plus set-up and restore costs.

Run from the repo root: ``python bench/bench_patterns.py`` (package installed) or
``PYTHONPATH=. python bench/bench_patterns.py``. Prints markdown tables; best of 5 repeats.
"""

from __future__ import annotations

import sys
import timeit

from mocksim.catalog import VALUE_TYPES
from mocksim.patterns import ValueGenerator, derive_seed
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

NUMBER = 200_000
REPEAT = 5
MODEL = VALUE_TYPES["ds18b20"]
SEED = derive_seed(42, "ESP_ABCDEF", "4:ds18b20", "ds18b20")

CASES: list[tuple[str, PatternSpec | None]] = [
    ("constant", ConstantPattern()),
    ("random", RandomPattern(range=2.0)),
    ("drift", DriftPattern(step=0.1)),
    ("drift + noise", DriftPattern(step=0.1, noise=0.2)),
    ("sine", SinePattern(amplitude=3.0, period_s=600.0)),
    ("sine + noise", SinePattern(amplitude=3.0, period_s=600.0, noise=0.2)),
    ("walk", WalkPattern(step=0.2)),
    ("walk + noise", WalkPattern(step=0.2, noise=0.1)),
    ("spike (p=0.05)", SpikePattern()),
    ("stuck", StuckPattern()),
    ("default (None: walk)", None),
]


def per_call_us(stmt: str, namespace: dict[str, object], number: int = NUMBER) -> float:
    timer = timeit.Timer(stmt, globals=namespace)
    return min(timer.repeat(REPEAT, number)) / number * 1e6


def main() -> None:
    print(f"Python {sys.version.split()[0]}; best of {REPEAT} x {NUMBER:,} calls\n")
    print("| pattern | µs/value |")
    print("|---|---:|")
    for name, pattern in CASES:
        gen = ValueGenerator(pattern, MODEL, seed=SEED)
        print(f"| {name} | {per_call_us('gen.next(1.0)', {'gen': gen}):.2f} |")
    gen = ValueGenerator(DriftPattern(), MODEL, seed=SEED)
    gen.set_override(99.0)
    print(f"| override set | {per_call_us('gen.next(1.0)', {'gen': gen}):.2f} |")

    ns: dict[str, object] = {
        "derive_seed": derive_seed,
        "VG": ValueGenerator,
        "M": MODEL,
        "P": WalkPattern(step=0.2),
        "SEED": SEED,
    }
    print("\n| one-off cost | µs |")
    print("|---|---:|")
    seed_stmt = "derive_seed(42, 'ESP_ABCDEF', '4:ds18b20', 'ds18b20')"
    print(f"| derive_seed | {per_call_us(seed_stmt, ns, 20_000):.2f} |")
    print(f"| ValueGenerator(...) | {per_call_us('VG(P, M, seed=SEED)', ns, 20_000):.2f} |")
    walker = ValueGenerator(WalkPattern(step=0.2, noise=0.1), MODEL, seed=SEED)
    for _ in range(250_000):
        walker.next(0.0)
    state = walker.state()
    ns["W"] = walker
    ns["S"] = state
    draws = state["draws"]
    print(f"| restore() after {draws:,} draws | {per_call_us('W.restore(S)', ns, 20):.0f} |")
    ns["S"] = walker.state() | {"draws": 0}
    print(f"| restore() after 0 draws | {per_call_us('W.restore(S)', ns, 20_000):.2f} |")


if __name__ == "__main__":
    main()
