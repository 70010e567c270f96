"""Pendo API emulator: a real loopback HTTP server that behaves like Pendo's v1 API (PENDO_API.md).

Use it as a process (`EmulatorProcess`, or `python -m integration_tests.pendo_emulator serve`) or
in-process (`server.make_server`). `truth.GroundTruth` says which records each connector stream must
yield for a config, computed from the same seeded dataset the server answers from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

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
        extra_args: list[str] | None = None,
    ) -> None:
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

    def stats(self) -> dict[str, Any]:
        return self._control("/_emulator/stats")

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self._control("/_emulator/faults", rules)

    def set_late_rows(self, enabled: bool) -> None:
        self._control("/_emulator/late_rows", enabled)

    def reset(self) -> None:
        self._control("/_emulator/reset", {})
