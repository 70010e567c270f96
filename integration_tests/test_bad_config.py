"""Bad input: each invalid setting gets one actionable config error at `check` and at `read`, before any request.

One case per file in `bad_configs/`: `change` is applied to a valid config pointing at this module's emulator
(`{emulator_host}` stands for its host:port), `message` is the start of what the user must be told. The
emulator's request log proves that no call was made; `run_connector` proves the key was never printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from integration_tests.conftest import EMULATOR_TZ, catalog_for, run_connector
from integration_tests.pendo_emulator import EmulatorProcess

CASES = sorted(Path(__file__).parent.joinpath("bad_configs").glob("*.json"))


@pytest.fixture(scope="module")
def quiet_emulator(emulator_now: int) -> Iterator[EmulatorProcess]:
    """An emulator of this module's own: its request log must stay empty."""
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as process:
        yield process


def bad_config(
    case: Path, base_config: dict[str, Any], emulator: EmulatorProcess
) -> tuple[dict[str, Any], str]:
    host = emulator.base_url.split("://", 1)[1]
    spec = json.loads(case.read_text().replace("{emulator_host}", host))
    config = dict(base_config, base_url=emulator.base_url)
    config.update(spec["change"])
    return config, spec["message"]


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_config_gets_one_actionable_config_error_at_check_and_read_before_any_request(
    case, base_config, quiet_emulator
):
    config, message = bad_config(case, base_config, quiet_emulator)
    quiet_emulator.reset()

    with ThreadPoolExecutor(2) as pool:  # two processes at once: the suite's time is mostly process start-up
        checking = pool.submit(run_connector, "check", config)
        reading = pool.submit(run_connector, "read", config, catalog_for(["events", "pages"]))
        checked, read = checking.result(), reading.result()
    [status] = [m["connectionStatus"] for m in checked.of_type("CONNECTION_STATUS")]
    assert status["status"] == "FAILED" and status["message"].startswith(message), status
    assert checked.returncode == 0  # the protocol's way: check reports FAILED, it does not crash

    assert read.returncode == 1 and not read.records() and not read.states()
    [error] = read.errors()
    assert error["failure_type"] == "config_error" and error["message"].startswith(message), error
    assert not error.get("stack_trace")

    for run in (checked, read):
        assert "Traceback" not in run.stdout + run.stderr
    assert quiet_emulator.stats()["requests"] == [], "a request went out before the config was checked"
