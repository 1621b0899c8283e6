"""Start, wait for and kill a `busdrain emulator` process (used by the durability test and
the throughput script when they run their own emulator)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

EMULATOR_KEY_NAME = "RootManageSharedAccessKey"
EMULATOR_KEY = "SAS_KEY_VALUE"


def free_port() -> int:
    """A port the kernel just handed out; the emulator binds it moments later."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection_string(amqp_port: int, key_name: str = EMULATOR_KEY_NAME, key: str = EMULATOR_KEY) -> str:
    return (
        f"Endpoint=sb://localhost:{amqp_port};SharedAccessKeyName={key_name};"
        f"SharedAccessKey={key};UseDevelopmentEmulator=true;"
    )


@dataclass
class Emulator:
    """One emulator process on fixed ports and a data dir that outlives restarts."""

    binary: Path
    config: Path
    data_dir: Path
    log_path: Path
    amqp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def connection(self) -> str:
        return connection_string(self.amqp_port)

    def start(self, ready_timeout_s: float = 60.0) -> None:
        if self.process is not None:
            raise RuntimeError("emulator already running")
        command = [
            str(self.binary),
            "emulator",
            "--config",
            str(self.config),
            "--listen",
            f"127.0.0.1:{self.amqp_port}",
            "--data-dir",
            str(self.data_dir),
            "--http",
            f"127.0.0.1:{self.http_port}",
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed by the OS
        log.write(f"\n=== start: {' '.join(command)}\n".encode())
        log.flush()
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(ready_timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"emulator exited with {self.process.returncode} before serving; see {self.log_path}"
                )
            if self._amqp_accepts():
                return
            time.sleep(0.1)
        raise RuntimeError(f"emulator not ready after {timeout_s}s; see {self.log_path}")

    def health_ok(self) -> bool:
        """GET /health answers 200 (Microsoft's emulator serves the same endpoint)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _amqp_accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=1):
                return True
        except OSError:
            return False

    def kill_hard(self) -> None:
        """SIGKILL: no shutdown hook runs, only what the store already made durable survives."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None
