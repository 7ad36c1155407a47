"""The notebook panels, driven as a user would (clicks, slider moves) against a real fleet.

Every test runs a Fleet on a temporary SQLite file and the harness mosquitto, in fast mode, and
checks what reached the broker or the database, not what the panel claims.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mocksim import Fleet, ServerClient, TopicKind
from mocksim.widgets import (
    ActuatorPanel,
    ChartPanel,
    CreatorPanel,
    Refresher,
    TablePanel,
    Throttle,
    TunerPanel,
    dashboard,
    pattern_fields,
    plot,
)

WAIT_S = 10.0


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "") -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.05)


def new_id() -> str:
    return "MOCK_W" + secrets.token_hex(3).upper()


@pytest.fixture
def fleet(no_thread_leak: None, tmp_path: Path, mqtt_url: str) -> Iterator[Fleet]:
    with Fleet(db=f"sqlite:///{tmp_path / 'widgets.db'}", mqtt=mqtt_url, seed=11, fast=True) as f:
        yield f


@pytest.fixture
def server(fleet: Fleet) -> Iterator[ServerClient]:
    with fleet.server() as s:
        yield s


def add_sensor_device(fleet: Fleet, *, interval_s: float = 1.0, **extra: Any) -> str:
    device_id = new_id()
    fleet.add_device(
        id=device_id,
        sensors=[{"gpio": 4, "sensor_type": "ds18b20", "interval_s": interval_s}],
        **extra,
    )
    assert fleet.wait_connected()
    return device_id


# ---------------------------------------------------------------------------- creator


def test_create_with_valid_input_adds_a_running_device(fleet: Fleet) -> None:
    created = []
    panel = CreatorPanel(fleet, on_created=created.append)
    device_id = new_id()
    panel.device_id.value = device_id
    panel.zone_id.value = "greenhouse"
    panel.sensor_type.value = "sht31"
    panel.add_sensor_button.click()
    panel.actuator_type.value = "pwm"
    panel.actuator_gpio.value = 18
    panel.add_actuator_button.click()
    assert len(panel.parts.options) == 2

    panel.create_button.click()

    spec = fleet.spec(device_id)
    assert [s.key for s in spec.sensors] == ["21:sht31"]
    assert [(a.gpio, a.actuator_type) for a in spec.actuators] == [(18, "pwm")]
    assert spec.zone_id == "greenhouse"
    assert fleet.status(device_id)["desired_state"] == "running"
    assert [h.id for h in created] == [device_id]
    assert any(f"created {device_id}" in m for m in panel.messages)
    assert panel.parts.options == ()  # the form is ready for the next device


def test_create_with_invalid_id_shows_field_and_allowed_values_and_creates_nothing(
    fleet: Fleet,
) -> None:
    panel = CreatorPanel(fleet)
    panel.device_id.value = "greenhouse 1"
    panel.add_sensor_button.click()

    panel.create_button.click()

    assert fleet.devices().empty
    text = "\n".join(panel.messages)
    assert "SpecError" in text
    assert "field: id" in text
    assert "MOCK_[A-Z0-9]+" in text  # the allowed forms are named
    assert len(panel.parts.options) == 1  # the user can fix the id and try again


def test_create_with_too_short_heartbeat_names_the_bound(fleet: Fleet) -> None:
    panel = CreatorPanel(fleet)
    panel.device_id.value = new_id()
    panel.heartbeat_s.value = 1.0

    panel.create_button.click()

    assert fleet.devices().empty
    text = "\n".join(panel.messages)
    assert "field: heartbeat_interval_s" in text
    assert ">= 5" in text


def test_analog_sensor_on_a_digital_pin_is_refused_with_the_allowed_pins(fleet: Fleet) -> None:
    panel = CreatorPanel(fleet)
    panel.sensor_type.value = "ph"
    assert panel.sensor_gpio.value in range(32, 40)  # a suitable pin is offered
    panel.sensor_gpio.value = 4

    panel.add_sensor_button.click()

    assert panel.parts.options == ()
    text = "\n".join(panel.messages)
    assert "field: gpio" in text
    assert "ADC1 pins 32-39" in text


# ---------------------------------------------------------------------------- tuner


def readings_after(server: ServerClient, device_id: str, seq: int) -> list[dict[str, Any]]:
    return [
        r.payload
        for r in server.received(TopicKind.SENSOR_DATA, device_id)
        if r.payload["seq"] > seq
    ]


def test_tuner_drift_change_shows_in_the_next_published_reading(
    fleet: Fleet, server: ServerClient
) -> None:
    device_id = add_sensor_device(fleet)
    wait_until(lambda: readings_after(server, device_id, 0), what="a first reading")
    tuner = TunerPanel(fleet)
    tuner.reload()
    tuner.device.value = device_id
    assert tuner.sensor.value == "4:ds18b20"
    assert tuner.kind.value == "drift"
    before = [p["value"] for p in readings_after(server, device_id, 0)]
    assert all(15 < v < 30 for v in before)  # the catalogue default, near 21 °C

    tuner.rate.value = 0.5
    tuner.base.value = 80.0  # auto-apply: one update_sensor call
    seq_at_change = fleet.status(device_id)["seq"]

    after = wait_until(
        lambda: readings_after(server, device_id, seq_at_change), what="a reading after the change"
    )
    assert 80.0 <= after[0]["value"] <= 81.0
    assert after[0]["raw"] == round(after[0]["value"] * 16)
    pattern = fleet.spec(device_id).sensor("4:ds18b20").pattern
    assert pattern is not None
    assert (pattern.kind, pattern.start, pattern.step) == ("drift", 80.0, 0.5)
    assert any("drift" in m for m in tuner.messages)


def test_tuner_interval_change_retimes_the_running_sensor(fleet: Fleet) -> None:
    device_id = add_sensor_device(fleet, interval_s=30.0)
    tuner = TunerPanel(fleet, auto_apply=False)
    tuner.reload()
    tuner.device.value = device_id
    assert tuner.interval_s.value == 30.0

    tuner.interval_s.value = 7.0
    assert fleet.spec(device_id).sensors[0].interval_s == 30.0  # nothing until Apply
    tuner.apply_button.click()

    assert fleet.spec(device_id).sensors[0].interval_s == 7.0
    jobs = fleet.jobs()
    sensor_jobs = jobs[(jobs["device_id"] == device_id) & (jobs["kind"] != "heartbeat")]
    assert 7.0 in set(sensor_jobs["interval_s"])


def test_tuner_min_above_max_shows_the_error_and_keeps_the_pattern(fleet: Fleet) -> None:
    device_id = add_sensor_device(fleet)
    tuner = TunerPanel(fleet, auto_apply=False)
    tuner.reload()
    tuner.device.value = device_id
    tuner.low.value = 60.0
    tuner.high.value = 30.0

    tuner.apply_button.click()

    assert fleet.spec(device_id).sensors[0].pattern is None
    text = "\n".join(tuner.messages)
    assert "SpecError" in text
    assert "min" in text
    assert "<= max" in text


def test_tuner_shows_only_the_sliders_a_pattern_uses() -> None:
    assert pattern_fields("sine", base=20, spread=2, period_s=60) == {
        "kind": "sine",
        "base": 20,
        "amplitude": 2,
        "period_s": 60,
    }
    assert pattern_fields("walk", base=5, rate=-0.2, low=0, high=10) == {
        "kind": "walk",
        "base": 5,
        "step": 0.2,
        "min": 0,
        "max": 10,
    }


def test_tuner_multi_value_sensor_tunes_one_value(fleet: Fleet) -> None:
    device_id = new_id()
    fleet.add_device(id=device_id, sensors=[{"gpio": 21, "sensor_type": "sht31"}])
    tuner = TunerPanel(fleet, auto_apply=False)
    tuner.reload()
    tuner.device.value = device_id
    tuner.value_type.value = "sht31_humidity"
    tuner.kind.value = "constant"
    tuner.base.value = 70.0

    tuner.apply_button.click()

    sensor = fleet.spec(device_id).sensors[0]
    assert sensor.pattern_for("sht31_humidity").model_dump()["value"] == 70.0
    assert sensor.pattern_for("sht31_temp") is None


# ---------------------------------------------------------------------------- table


def test_table_buttons_stop_pause_and_start_devices(fleet: Fleet) -> None:
    a, b = add_sensor_device(fleet), add_sensor_device(fleet)
    table = TablePanel(fleet)
    assert table.refresh(force=True)
    assert set(table.select.options) == {a, b}
    assert a in table.table.value

    table.select.value = (a,)
    table.buttons["pause"].click()
    assert fleet.status(a)["runtime_status"] == "paused"
    assert fleet.status(b)["runtime_status"] == "running"

    table.select.value = (a, b)
    table.buttons["stop"].click()
    states = dict(zip(table.frame["device_id"], table.frame["desired_state"], strict=True))
    assert states == {a: "stopped", b: "stopped"}

    table.buttons["start"].click()
    assert fleet.status(a)["runtime_status"] == "running"
    assert fleet.status(b)["runtime_status"] == "running"
    assert table.select.value == (a, b)  # a refresh keeps the selection


def test_table_button_without_selection_says_what_to_do(fleet: Fleet) -> None:
    add_sensor_device(fleet)
    table = TablePanel(fleet)
    table.refresh(force=True)

    table.buttons["stop"].click()

    assert "select devices to stop" in table.messages
    assert (fleet.devices()["desired_state"] == "running").all()


def test_table_refresh_is_throttled_to_five_per_second(fleet: Fleet) -> None:
    table = TablePanel(fleet)
    started = time.monotonic()
    redraws = sum(table.refresh() for _ in range(50))
    elapsed = time.monotonic() - started
    assert 1 <= redraws <= 1 + int(elapsed * 5)


# ---------------------------------------------------------------------------- actuators


@pytest.fixture
def panel(fleet: Fleet) -> Iterator[ActuatorPanel]:
    p = ActuatorPanel(fleet)
    yield p
    p.close()


@pytest.fixture
def actuator_device(fleet: Fleet) -> str:
    device_id = new_id()
    fleet.add_device(
        id=device_id,
        actuators=[{"gpio": 5, "actuator_type": "pump"}, {"gpio": 18, "actuator_type": "pwm"}],
    )
    assert fleet.wait_connected()
    return device_id


def test_actuator_panel_on_off_pwm_show_the_device_response(
    fleet: Fleet, actuator_device: str, panel: ActuatorPanel
) -> None:
    panel.reload()
    panel.device.value = actuator_device
    assert panel.gpio.options == (("gpio 5 · pump", 5), ("gpio 18 · pwm", 18))

    panel.buttons["ON"].click()
    assert panel.last_response is not None
    assert panel.last_response["success"] is True
    assert panel.last_response["command"] == "ON"
    assert "ON" in panel.response.value
    assert fleet.status(actuator_device)["actuators"][0]["state"] is True

    panel.buttons["OFF"].click()
    assert panel.last_response["command"] == "OFF"
    assert fleet.status(actuator_device)["actuators"][0]["state"] is False

    panel.gpio.value = 18
    panel.value.value = 0.5
    panel.buttons["PWM"].click()
    assert panel.last_response["success"] is True
    assert fleet.status(actuator_device)["actuators"][1]["pwm"] == round(0.5 * 255)


def test_actuator_panel_emergency_stop_refuses_commands_until_cleared(
    fleet: Fleet, actuator_device: str, panel: ActuatorPanel
) -> None:
    panel.reload()
    panel.device.value = actuator_device
    panel.buttons["ON"].click()

    panel.stop_button.click()
    assert panel.last_response["answers"][0]["outcome"] == "executed"
    assert fleet.status(actuator_device)["actuators"][0]["state"] is False
    panel.buttons["ON"].click()
    assert panel.last_response["success"] is False
    assert any(m.startswith("ON") for m in panel.messages if "→" in m)

    panel.clear_button.click()
    assert panel.last_response["answers"][0]["state"] == "cleared"
    panel.buttons["ON"].click()
    assert panel.last_response["success"] is True


def test_actuator_panel_without_a_choice_sends_nothing(panel: ActuatorPanel) -> None:
    panel.reload()
    assert panel.command("ON") is None
    assert "choose a device and an actuator first" in panel.messages


# ---------------------------------------------------------------------------- chart


def test_chart_draws_the_readings_the_broker_delivered(fleet: Fleet) -> None:
    device_id = add_sensor_device(fleet)
    chart = ChartPanel(fleet, sensor_type="ds18b20", window_min=5)
    wait_until(
        lambda: chart.refresh(force=True) and len(chart.frame) >= 3, what="three recorded readings"
    )

    line = chart.lines[0]
    assert line.visible
    assert line.labels == [f"{device_id} · gpio 4"]
    frame = chart.frame.sort_values("received_at")
    np.testing.assert_allclose(line.y, frame["value"].to_numpy(dtype=float))
    assert len(line.x) == len(line.y)
    assert not any(other.visible for other in chart.lines[1:])
    assert f"from {device_id}" in chart.summary.value
    assert "°C" in chart.y_axis.label
    assert chart.devices.options == (device_id,)


def test_chart_shows_only_the_chosen_devices_and_sensor_type(fleet: Fleet) -> None:
    a, b = add_sensor_device(fleet), add_sensor_device(fleet)
    chart = ChartPanel(fleet)
    wait_until(
        lambda: chart.refresh(force=True) and set(chart.frame["device_id"]) == {a, b},
        what="readings of both devices",
    )
    assert sum(line.visible for line in chart.lines) == 2

    chart.devices.value = (b,)  # a control change redraws at once
    assert set(chart.frame["device_id"]) == {b}
    assert sum(line.visible for line in chart.lines) == 1

    chart.sensor_type.value = "sht31_temp"
    assert chart.frame.empty
    assert not any(line.visible for line in chart.lines)
    assert "no sht31_temp readings" in chart.summary.value


def test_chart_redraws_at_most_five_times_a_second(fleet: Fleet) -> None:
    add_sensor_device(fleet)
    chart = ChartPanel(fleet)
    started = time.monotonic()
    results = []
    while time.monotonic() - started < 1.0:
        results.append(chart.refresh())
    elapsed = time.monotonic() - started
    assert len(results) > 10  # many attempts …
    assert sum(results) <= 1 + int(elapsed * 5)  # … few redraws
    assert chart.redraws == sum(results)


def test_throttle_refuses_rates_above_five_hertz() -> None:
    with pytest.raises(ValueError, match="min_interval_s"):
        Throttle(0.1)


def test_plot_draws_one_line_per_series() -> None:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "received_at": [t0, t0 + pd.Timedelta(seconds=1), t0, t0 + pd.Timedelta(seconds=2)],
            "device_id": ["MOCK_A", "MOCK_A", "MOCK_B", "MOCK_B"],
            "sensor_type": ["ds18b20"] * 4,
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )
    figure = plot(frame, title="two devices")
    assert [m.labels for m in figure.marks] == [["MOCK_A · ds18b20"], ["MOCK_B · ds18b20"]]
    assert list(figure.marks[1].y) == [3.0, 4.0]
    assert figure.title == "two devices"


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_shows_a_created_device_everywhere_and_charts_it(fleet: Fleet) -> None:
    with dashboard(fleet, refresh_s=0.2) as board:
        device_id = new_id()
        board.creator.device_id.value = device_id
        board.creator.sensor_interval_s.value = 1.0
        board.creator.add_sensor_button.click()
        board.creator.actuator_gpio.value = 5
        board.creator.add_actuator_button.click()

        board.creator.create_button.click()

        assert board.tuner.device.value == device_id
        assert board.tuner.sensor.value == "4:ds18b20"
        assert board.actuators.device.value == device_id
        assert device_id in board.table.select.options
        wait_until(
            lambda: any(line.visible and len(line.y) for line in board.chart.lines),
            what="the refresher to chart a reading",
        )
        assert board.refresher.running
    assert not board.refresher.running


def test_refresher_ends_by_itself_when_the_fleet_closes(
    no_thread_leak: None, tmp_path: Path, mqtt_url: str
) -> None:
    fleet = Fleet(db=f"sqlite:///{tmp_path / 'closing.db'}", mqtt=mqtt_url, fast=True)
    table = TablePanel(fleet)
    refresher = Refresher(fleet, [table.refresh], interval_s=0.2)
    refresher.start()
    wait_until(lambda: table.frame is not None and "device_id" in table.frame.columns)
    fleet.close()
    wait_until(lambda: not refresher.running, timeout_s=3.0, what="the refresher to end")
    assert not any(t.name.startswith("mocksim-widgets") for t in threading.enumerate())
