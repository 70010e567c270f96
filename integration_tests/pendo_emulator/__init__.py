"""Pendo API emulator: a real loopback HTTP server that behaves like Pendo's v1 API (BEHAVIOR.md).

Use it as a process (`EmulatorProcess`, or `python -m integration_tests.pendo_emulator serve`) or
in-process (`server.make_server`). `truth.GroundTruth` says which records each connector stream must
yield for a config, computed from the same seeded dataset the server answers from.

Readings (readings.py): `EmulatorProcess(readings=["pessimistic"])` or `--reading NAME` makes the server
answer as another reading of Pendo's API that BEHAVIOR.md lists (§R-1 … §R-20): per_period_pipeline,
visitors_by_app, missing_lastupdated, receive_time_buckets, null_results, bad_request_400,
history_unavailable, no_tracktype_rest, report_errors, strict_value_forms, strict_filters, spaced_json,
rate_limit_403, read_only_key, poll_choices_in_attributes, lowercase_poll_types, rows_without_browsertime;
`pessimistic` is all of
them. The records that exist do not change, so the ground truth is the same, except where
`missing_lastupdated` removes a value or the poll readings change how guides list their polls: build it from
`EmulatorProcess.dataset()` (the process's scale, seed, clock, time zone and readings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .dataset import SCALES, Dataset
from .readings import expand

REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    """Starts `python -m integration_tests.pendo_emulator serve` and talks to its control routes."""

    def __init__(
        self,
        *,
        scale: str = "tiny",
        seed: int = 7,
        now_ms: int | None = None,
        tz: str = "UTC",
        region: str = "us",
        faults: list[dict[str, Any]] | None = None,
        late_rows: bool = False,
        readings: Iterable[str] = (),
        untagged: Iterable[str] = (),
        extra_args: list[str] | None = None,
    ) -> None:
        self.scale, self.seed, self.tz = scale, seed, tz
        self.readings = tuple(readings)
        expand(self.readings)  # unknown names fail here, not in the child process
        self.args = [
            sys.executable,
            "-m",
            "integration_tests.pendo_emulator",
            "serve",
            "--port",
            "0",
            "--scale",
            scale,
            "--seed",
            str(seed),
            "--tz",
            tz,
            "--region",
            region,
        ]
        if now_ms:
            self.args += ["--now", str(now_ms)]
        if faults:
            self.args += ["--faults", json.dumps(faults)]
        if late_rows:
            self.args.append("--late-rows")
        for name in self.readings:
            self.args += ["--reading", name]
        self.untagged = tuple(untagged)
        for oid in self.untagged:
            self.args += ["--untagged", oid]
        self.catalogue_changes: list[dict[str, Any]] = []
        self.args += extra_args or []
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.now_ms = 0

    def start(self) -> EmulatorProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(self.args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator exited before listening (exit code {self.process.wait()})")
        info = json.loads(line)
        self.base_url, self.now_ms = info["base_url"], info["now_ms"]
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _control(self, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method="POST" if data is not None else "GET"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def dataset(self) -> Dataset:
        """The dataset the running server answers from (for `truth.GroundTruth`), readings and catalogue
        changes included."""
        ds = Dataset(SCALES[self.scale], self.seed, self.now_ms, self.tz, expand(self.readings))
        ds.changes.untagged.update(self.untagged)
        for change in self.catalogue_changes:
            ds.changes.apply(change, self.now_ms)
        return ds

    def change_catalogue(self, *changes: dict[str, Any]) -> None:
        """Tags, rule edits, reprocessing, deletions (catalogue_changes.py), applied by the running server."""
        self._control("/_emulator/catalogue", list(changes))
        self.catalogue_changes += changes

    def stats(self) -> dict[str, Any]:
        return self._control("/_emulator/stats")

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self._control("/_emulator/faults", rules)

    def set_late_rows(self, enabled: bool) -> None:
        self._control("/_emulator/late_rows", enabled)

    def reset(self) -> None:
        self._control("/_emulator/reset", {})
