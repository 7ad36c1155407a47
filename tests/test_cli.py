"""The mocksim command: admin verbs on the database, run until a signal, the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mocksim.cli import demo_specs, main
from mocksim.protocol.topics import TopicKind
from mocksim.server import ServerClient
from mocksim.store import DesiredState, RuntimeStatus, Store

SPEC = {
    "id": "ESP_C11A01",
    "sensors": [{"gpio": 4, "sensor_type": "ds18b20", "interval_s": 1}],
    "actuators": [{"gpio": 5, "actuator_type": "pump"}],
}


def test_add_devices_status_remove(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text("devices:\n  - id: ESP_C11A02\n    zone_id: z1\n", encoding="utf-8")
    json_file = tmp_path / "one.json"
    json_file.write_text(json.dumps(SPEC), encoding="utf-8")
    assert main(["--db", db_url, "add", str(spec_file)]) == 0
    assert main(["--db", db_url, "add", "--stopped", str(json_file)]) == 0
    assert main(["--db", db_url, "devices"]) == 0
    out = capsys.readouterr().out
    assert "ESP_C11A02" in out
    assert "ESP_C11A01" in out
    assert main(["--db", db_url, "status", "ESP_C11A01"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert main(["--db", db_url, "remove", "ESP_C11A02"]) == 0
    with Store.open(db_url) as store:
        assert store.device_ids() == ["ESP_C11A01"]


def test_errors_print_type_and_message_and_exit_non_zero(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({**SPEC, "sensors": [{"gpio": 40, "sensor_type": "ds18b20"}]}), encoding="utf-8"
    )
    assert main(["--db", db_url, "add", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("SpecError: sensors[0].gpio: 40")
    assert main(["--db", db_url, "status", "ESP_FFFFFF"]) == 1
    assert "UnknownDeviceError" in capsys.readouterr().err
    assert main(["--db", db_url, "add", str(tmp_path / "missing.yaml")]) == 1
    assert "FileNotFoundError" in capsys.readouterr().err
    with Store.open(db_url) as store:
        assert store.device_ids() == []


@pytest.mark.mqtt
def test_sigterm_stops_run_cleanly_without_will(db_url: str, mqtt_url: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "one.json"
    spec_file.write_text(json.dumps(SPEC), encoding="utf-8")
    assert main(["--db", db_url, "add", str(spec_file)]) == 0
    with ServerClient(mqtt_url) as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mocksim.cli",
                "--db",
                db_url,
                "run",
                "--mqtt",
                mqtt_url,
                "--fast",
                "--status-every",
                "0.5",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            server.wait_for(
                lambda r: r.topic.kind is TopicKind.SENSOR_DATA and r.topic.esp_id == SPEC["id"],
                count=3,
                timeout_s=15,
            )
            with Store.open(db_url) as store:
                assert store.get_device(SPEC["id"]).runtime_status is RuntimeStatus.RUNNING
            time.sleep(0.7)  # at least one status line
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert "devices=1 running=1" in out
        assert "stopping" in out
        time.sleep(0.5)
        assert server.received(TopicKind.WILL, SPEC["id"]) == []
    with Store.open(db_url) as store:
        rec = store.get_device(SPEC["id"])
        assert rec.desired_state is DesiredState.RUNNING
        assert rec.runtime_status is RuntimeStatus.STOPPED
        assert store.lease_owner(SPEC["id"]) is None
        assert store.load_checkpoint(SPEC["id"]) is not None


def test_demo_runs_on_embedded_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--duration", "3", "--fast"]) == 0
    out = capsys.readouterr().out
    assert "live readings" in out
    assert "ds18b20" in out
    with Store.open(f"sqlite:///{tmp_path}/mocksim.db") as store:
        assert sorted(store.device_ids()) == sorted(d["id"] for d in demo_specs())
