"""Value generators: each pattern's semantics, clamping, override, seeding, checkpoints, retune."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest

from mocksim.catalog import VALUE_TYPES
from mocksim.errors import SpecError
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

TEMP = VALUE_TYPES["ds18b20"]  # -55 … 125 °C, default 21
HUMIDITY = VALUE_TYPES["sht31_humidity"]  # 0 … 100 %RH, default 55

EVERY_KIND: list[PatternSpec | None] = [
    ConstantPattern(),
    RandomPattern(range=2.0),
    DriftPattern(step=0.3, noise=0.1),
    SinePattern(amplitude=3.0, period_s=60.0, noise=0.1),
    WalkPattern(step=0.2, noise=0.1),
    SpikePattern(probability=0.2),
    StuckPattern(),
    None,
]
RANDOM_KINDS = [p for p in EVERY_KIND if not isinstance(p, ConstantPattern | StuckPattern)]


def run(gen: ValueGenerator, n: int, *, t0: float = 0.0, dt: float = 1.0) -> list[float]:
    return [gen.next(t0 + i * dt) for i in range(n)]


# ---------------------------------------------------------------------------- derive_seed


def test_derive_seed_is_a_fixed_value_for_fixed_inputs():
    # Computed once; hash() would differ between processes, blake2b does not.
    assert derive_seed(42, "ESP_ABCDEF", "4:ds18b20", "ds18b20") == 17491928058834469038


def test_derive_seed_differs_for_every_input():
    base = derive_seed(42, "ESP_ABCDEF", "4:ds18b20", "ds18b20")
    others = {
        derive_seed(43, "ESP_ABCDEF", "4:ds18b20", "ds18b20"),
        derive_seed(42, "ESP_ABCDE0", "4:ds18b20", "ds18b20"),
        derive_seed(42, "ESP_ABCDEF", "5:ds18b20", "ds18b20"),
        derive_seed(42, "ESP_ABCDEF", "21:sht31:68", "sht31_temp"),
        derive_seed(42, "ESP_ABCDEF", "21:sht31:68", "sht31_humidity"),
    }
    assert base not in others
    assert len(others) == 5


def test_derive_seed_does_not_confuse_field_boundaries():
    assert derive_seed(1, "ESP_AB", "C:x", "y") != derive_seed(1, "ESP_A", "BC:x", "y")


def test_derive_seed_fits_in_64_bits():
    seed = derive_seed(-7, "MOCK_X", "32:ph", "ph")
    assert 0 <= seed < 2**64


# ---------------------------------------------------------------------------- constant / random


def test_constant_repeats_its_value():
    gen = ValueGenerator(ConstantPattern(value=23.5), TEMP, seed=1)
    assert run(gen, 5) == [23.5] * 5


def test_constant_without_value_uses_catalogue_default():
    gen = ValueGenerator(ConstantPattern(), HUMIDITY, seed=1)
    assert gen.next(0) == HUMIDITY.default == 55.0


def test_random_stays_within_base_plus_minus_range_and_spreads_over_it():
    gen = ValueGenerator(RandomPattern(base=20.0, range=2.0), TEMP, seed=3)
    values = run(gen, 2000)
    assert all(18.0 <= v <= 22.0 for v in values)
    assert min(values) < 18.1
    assert max(values) > 21.9
    assert abs(statistics.fmean(values) - 20.0) < 0.15


def test_random_is_clamped_to_bounds_narrower_than_its_range():
    gen = ValueGenerator(RandomPattern(base=20.0, range=5.0), TEMP, seed=3, lo=19.0, hi=21.0)
    values = run(gen, 500)
    assert all(19.0 <= v <= 21.0 for v in values)
    assert values.count(19.0) > 50
    assert values.count(21.0) > 50


# ---------------------------------------------------------------------------- drift


def test_drift_steps_per_reading_and_bounces_at_bounds():
    gen = ValueGenerator(DriftPattern(start=21.0, step=0.5, min=20.0, max=22.0), TEMP, seed=1)
    # Time gaps do not matter: a drift moves one step per reading.
    values = [gen.next(t) for t in (0, 1, 100, 101, 5000, 5001, 5002, 5003, 5004, 5005)]
    assert values == [21.0, 21.5, 22.0, 21.5, 21.0, 20.5, 20.0, 20.5, 21.0, 21.5]


def test_drift_reflects_an_overshoot_back_inside():
    gen = ValueGenerator(DriftPattern(start=21.0, step=0.4, min=20.0, max=22.0), TEMP, seed=1)
    values = run(gen, 5)
    assert values == pytest.approx([21.0, 21.4, 21.8, 21.8, 21.4])


def test_drift_with_negative_step_moves_down_first():
    gen = ValueGenerator(DriftPattern(start=21.0, step=-1.0), TEMP, seed=1)
    assert run(gen, 3) == [21.0, 20.0, 19.0]


def test_noisy_drift_never_leaves_its_bounds():
    pattern = DriftPattern(start=20.0, step=0.7, noise=0.5, min=18.0, max=23.0)
    values = run(ValueGenerator(pattern, TEMP, seed=9), 3000)
    assert all(18.0 <= v <= 23.0 for v in values)
    assert min(values) == 18.0
    assert max(values) == 23.0


def test_drift_step_wider_than_bounds_still_stays_inside():
    gen = ValueGenerator(DriftPattern(start=20.0, step=10.0, min=20.0, max=21.0), TEMP, seed=1)
    assert all(20.0 <= v <= 21.0 for v in run(gen, 20))


# ---------------------------------------------------------------------------- sine


def test_sine_hits_its_extremes_at_the_right_time():
    gen = ValueGenerator(SinePattern(base=10.0, amplitude=2.0, period_s=100.0), TEMP, seed=1)
    assert gen.next(0.0) == pytest.approx(10.0)
    assert gen.next(25.0) == pytest.approx(12.0)
    assert gen.next(50.0) == pytest.approx(10.0)
    assert gen.next(75.0) == pytest.approx(8.0)
    assert gen.next(125.0) == pytest.approx(12.0)


def test_sine_phase_shifts_the_wave():
    pattern = SinePattern(base=10.0, amplitude=2.0, period_s=100.0, phase_s=25.0)
    gen = ValueGenerator(pattern, TEMP, seed=1)
    assert gen.next(0.0) == pytest.approx(12.0)
    assert gen.next(50.0) == pytest.approx(8.0)


def test_sine_follows_device_time_not_reading_count():
    gen = ValueGenerator(SinePattern(base=10.0, amplitude=2.0, period_s=100.0), TEMP, seed=1)
    assert [gen.next(25.0) for _ in range(3)] == pytest.approx([12.0] * 3)


def test_sine_is_clamped_at_its_bounds():
    pattern = SinePattern(base=10.0, amplitude=5.0, period_s=100.0, max=12.0)
    gen = ValueGenerator(pattern, TEMP, seed=1)
    assert gen.next(25.0) == 12.0
    assert gen.next(75.0) == pytest.approx(5.0)


# ---------------------------------------------------------------------------- walk


def test_walk_without_steps_reverts_geometrically_toward_base():
    gen = ValueGenerator(DriftPattern(start=41.0), TEMP, seed=1)
    assert gen.next(0) == 41.0
    gen.retune(WalkPattern(step=0.0, reversion=0.5))  # base: the default 21
    assert run(gen, 4) == pytest.approx([31.0, 26.0, 23.5, 22.25])


def test_walk_wanders_around_its_base():
    gen = ValueGenerator(WalkPattern(base=30.0, step=0.5, reversion=0.1), TEMP, seed=5)
    values = run(gen, 5000)
    assert values[0] == 30.0
    assert len(set(values)) > 4000
    assert abs(statistics.fmean(values) - 30.0) < 0.5
    # Stationary σ of this AR(1) walk is step/sqrt(1-(1-r)^2) ≈ 1.15; far tails never show.
    assert max(abs(v - 30.0) for v in values) < 1.15 * 6


def test_default_pattern_is_a_gentle_walk_around_the_catalogue_default():
    values = run(ValueGenerator(None, HUMIDITY, seed=5), 3000)
    assert values[0] == 55.0
    assert len(set(values)) > 2000
    assert abs(statistics.fmean(values) - 55.0) < 1.0
    assert all(50.0 < v < 60.0 for v in values)


def test_default_centre_moves_inside_bounds_that_exclude_the_catalogue_default():
    gen = ValueGenerator(None, TEMP, seed=5, lo=30.0, hi=40.0)
    assert gen.next(0) == 35.0


# ---------------------------------------------------------------------------- spike


def test_spike_frequency_matches_probability():
    pattern = SpikePattern(base=20.0, noise=0.1, probability=0.05, magnitude=10.0)
    values = run(ValueGenerator(pattern, TEMP, seed=11), 10_000)
    ups = sum(v > 25.0 for v in values)
    downs = sum(v < 15.0 for v in values)
    # Expected 500 spikes, σ ≈ 22; the seeded count is fixed, the bounds are generous.
    assert 400 <= ups + downs <= 600
    assert ups > 150
    assert downs > 150
    again = run(ValueGenerator(pattern, TEMP, seed=11), 10_000)
    assert sum(abs(v - 20.0) > 5.0 for v in again) == ups + downs


def test_spike_probability_zero_never_spikes_and_one_always_does():
    never = run(ValueGenerator(SpikePattern(base=20.0, probability=0.0), TEMP, seed=1), 2000)
    always = run(ValueGenerator(SpikePattern(base=20.0, probability=1.0), TEMP, seed=1), 2000)
    assert all(abs(v - 20.0) < 5.0 for v in never)
    assert all(abs(v - 20.0) > 5.0 for v in always)


# ---------------------------------------------------------------------------- stuck


def test_stuck_with_value_repeats_it():
    gen = ValueGenerator(StuckPattern(value=4.5), TEMP, seed=1)
    assert run(gen, 4) == [4.5] * 4


def test_stuck_on_a_fresh_generator_sits_at_the_default():
    gen = ValueGenerator(StuckPattern(), TEMP, seed=1)
    assert run(gen, 3) == [21.0] * 3


def test_retune_to_stuck_freezes_the_current_value():
    gen = ValueGenerator(WalkPattern(step=0.5), TEMP, seed=2)
    values = run(gen, 10)
    gen.retune(StuckPattern())
    assert run(gen, 5, t0=10.0) == [values[-1]] * 5


def test_stuck_draws_nothing_from_the_random_sequence():
    gen = ValueGenerator(RandomPattern(), TEMP, seed=2)
    twin = ValueGenerator(RandomPattern(), TEMP, seed=2)
    gen.retune(StuckPattern(value=1.0))
    run(gen, 50)
    gen.retune(RandomPattern())
    assert run(gen, 10) == run(twin, 10)


# ---------------------------------------------------------------------------- override


def test_override_wins_is_not_clamped_and_clears():
    gen = ValueGenerator(ConstantPattern(value=20.0), TEMP, seed=1, lo=0.0, hi=50.0)
    gen.set_override(500.0)
    assert gen.override == 500.0
    assert run(gen, 2) == [500.0, 500.0]
    assert gen.last == 500.0
    gen.set_override(None)
    assert gen.override is None
    assert gen.next(2) == 20.0


def test_pattern_resumes_where_it_was_after_an_override():
    gen = ValueGenerator(DriftPattern(start=20.0, step=1.0), TEMP, seed=1)
    assert run(gen, 3) == [20.0, 21.0, 22.0]
    gen.set_override(-3.0)
    assert run(gen, 5) == [-3.0] * 5
    gen.set_override(None)
    assert run(gen, 2) == [23.0, 24.0]
    assert gen.ticks == 10


@pytest.mark.parametrize("bad", [math.nan, math.inf, "12", True])
def test_override_rejects_what_is_not_a_finite_number(bad: object):
    gen = ValueGenerator(None, TEMP, seed=1)
    with pytest.raises(SpecError, match="override"):
        gen.set_override(bad)  # type: ignore[arg-type]  # a wrong type is the point
    assert gen.override is None


# ---------------------------------------------------------------------------- bounds


def test_results_clamp_to_physical_range_by_default():
    gen = ValueGenerator(ConstantPattern(value=500.0), TEMP, seed=1)
    assert gen.bounds == (-55.0, 125.0)
    assert gen.next(0) == 125.0


def test_sensor_bounds_clamp_and_pattern_bounds_win_over_them():
    sensor = ValueGenerator(ConstantPattern(value=30.0), TEMP, seed=1, lo=0.0, hi=25.0)
    assert sensor.next(0) == 25.0
    pattern = ConstantPattern(value=30.0, max=28.0)
    both = ValueGenerator(pattern, TEMP, seed=1, lo=0.0, hi=25.0)
    assert both.bounds == (0.0, 28.0)
    assert both.next(0) == 28.0


def test_contradicting_bounds_raise_naming_the_field():
    with pytest.raises(SpecError) as err:
        ValueGenerator(DriftPattern(min=50.0), TEMP, seed=1, hi=40.0)
    assert err.value.field == "pattern.min"
    assert "40" in str(err.value)
    with pytest.raises(SpecError) as err:
        ValueGenerator(None, TEMP, seed=1, lo=10.0, hi=5.0)
    assert err.value.field == "min"


# ---------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("pattern", EVERY_KIND, ids=lambda p: p.kind if p else "default")
def test_same_seed_gives_identical_sequences(pattern: PatternSpec | None):
    a = run(ValueGenerator(pattern, TEMP, seed=1234), 300)
    b = run(ValueGenerator(pattern, TEMP, seed=1234), 300)
    assert a == b


@pytest.mark.parametrize("pattern", RANDOM_KINDS, ids=lambda p: p.kind if p else "default")
def test_different_seeds_give_different_sequences(pattern: PatternSpec | None):
    a = run(ValueGenerator(pattern, TEMP, seed=1234), 300)
    b = run(ValueGenerator(pattern, TEMP, seed=1235), 300)
    assert a != b


def test_generators_with_one_seed_share_no_state():
    a = ValueGenerator(RandomPattern(), TEMP, seed=7)
    b = ValueGenerator(RandomPattern(), TEMP, seed=7)
    first = run(a, 5)
    assert run(b, 5) == first


# ---------------------------------------------------------------------------- state / restore


def test_restore_continues_drift_position_and_direction():
    pattern = DriftPattern(start=21.0, step=0.5, min=20.0, max=22.0)
    gen = ValueGenerator(pattern, TEMP, seed=1)
    run(gen, 4)  # 21, 21.5, 22, 21.5: now heading down
    state = json.loads(json.dumps(gen.state()))
    assert state["direction"] == -1
    assert state["pos"] == 21.5
    fresh = ValueGenerator(pattern, TEMP, seed=1)
    fresh.restore(state)
    assert run(fresh, 3) == [21.0, 20.5, 20.0]
    assert fresh.ticks == 7


@pytest.mark.parametrize("pattern", EVERY_KIND, ids=lambda p: p.kind if p else "default")
def test_restored_generator_continues_the_exact_sequence(pattern: PatternSpec | None):
    gen = ValueGenerator(pattern, TEMP, seed=99)
    run(gen, 137)
    state = json.loads(json.dumps(gen.state()))
    expected = run(gen, 50, t0=137.0)
    fresh = ValueGenerator(pattern, TEMP, seed=99)
    fresh.restore(state)
    assert run(fresh, 50, t0=137.0) == expected


def test_state_is_small_and_json_safe():
    gen = ValueGenerator(WalkPattern(noise=0.1), TEMP, seed=3)
    run(gen, 1000)
    text = json.dumps(gen.state())
    assert len(text) < 250
    assert json.loads(text)["ticks"] == 1000


def test_restore_skip_matches_calling_random_one_by_one():
    # restore() relies on getrandbits(64 n) consuming what n random() calls consume.
    a = random.Random(5)
    for _ in range(70_001):
        a.random()
    b = random.Random(5)
    gen = ValueGenerator(RandomPattern(), TEMP, seed=5)
    gen.restore({"draws": 70_001})
    b.getrandbits(64 * 70_001)
    assert a.random() == b.random()
    twin = ValueGenerator(RandomPattern(), TEMP, seed=5)
    run(twin, 70_001)
    assert gen.next(0) == twin.next(0)


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"direction": 0}, "state.direction"),
        ({"draws": -1}, "state.draws"),
        ({"ticks": 1.5}, "state.ticks"),
        ({"pos": "x"}, "state.pos"),
        ({"last": math.nan}, "state.last"),
        ({"rng": 1}, "state"),
    ],
)
def test_bad_state_raises_and_changes_nothing(state: dict[str, object], field: str):
    gen = ValueGenerator(DriftPattern(start=20.0, step=1.0), TEMP, seed=1)
    run(gen, 3)
    before = gen.state()
    with pytest.raises(SpecError) as err:
        gen.restore(state)
    assert err.value.field == field
    assert gen.state() == before


# ---------------------------------------------------------------------------- retune


def test_retuned_drift_continues_from_last_value_and_direction():
    gen = ValueGenerator(DriftPattern(start=21.0, step=0.5, min=20.0, max=22.0), TEMP, seed=1)
    run(gen, 4)  # … 22.0, 21.5 heading down
    gen.retune(DriftPattern(start=21.0, step=0.25, min=20.0, max=22.0))  # same start
    assert run(gen, 2) == [21.25, 21.0]


def test_retuned_drift_with_a_different_start_restarts_there():
    gen = ValueGenerator(DriftPattern(start=21.0, step=0.5), TEMP, seed=1)
    run(gen, 4)
    gen.retune(DriftPattern(start=30.0, step=0.5))
    assert run(gen, 2) == [30.0, 30.5]


def test_retune_from_sine_to_drift_continues_from_the_sine_value():
    gen = ValueGenerator(SinePattern(base=10.0, amplitude=2.0, period_s=100.0), TEMP, seed=1)
    assert gen.next(25.0) == pytest.approx(12.0)
    gen.retune(DriftPattern(step=1.0))
    assert gen.next(26.0) == pytest.approx(13.0)


def test_retuned_walk_keeps_position_unless_its_base_changes():
    gen = ValueGenerator(DriftPattern(start=40.0), TEMP, seed=1)
    gen.next(0)
    gen.retune(WalkPattern(step=0.0, reversion=0.5, base=20.0))  # base differs: restart at it
    assert gen.next(1) == 20.0
    gen.retune(WalkPattern(step=0.0, reversion=0.5, base=20.0, max=19.0))
    assert gen.next(2) == 19.0  # same base, new bound: continues, clamped into the bounds


def test_retune_position_is_clamped_into_new_bounds():
    gen = ValueGenerator(DriftPattern(start=30.0, step=1.0), TEMP, seed=1)
    run(gen, 2)  # 30, 31
    gen.retune(DriftPattern(step=1.0), hi=25.0)
    assert run(gen, 2) == [24.0, 23.0]


def test_bad_retune_raises_and_leaves_generator_unchanged():
    gen = ValueGenerator(DriftPattern(start=20.0, step=1.0), TEMP, seed=1)
    run(gen, 2)
    with pytest.raises(SpecError):
        gen.retune(DriftPattern(min=30.0), hi=25.0)
    assert isinstance(gen.pattern, DriftPattern)
    assert gen.next(2) == 22.0


def test_retune_keeps_the_random_sequence_running():
    gen = ValueGenerator(RandomPattern(), TEMP, seed=4)
    twin = ValueGenerator(RandomPattern(), TEMP, seed=4)
    gen.retune(RandomPattern(base=0.0))  # the default base was 21
    assert [v + 21.0 for v in run(gen, 5)] == pytest.approx(run(twin, 5))
