"""HEALTHCHECK for detached containers, run by their monitor.

Docker's rules: the status starts as "starting"; each probe runs `Interval`
after the previous one ended (the first one `Interval` after the start); a
probe that exits 0 makes the container healthy, and `Retries` failures in a
row make it unhealthy. Failures inside `StartPeriod` do not count until a
probe has succeeded. Probes that outlive `Timeout` are killed and fail. The
last five results are kept with up to 4 KiB of output each.
"""

from __future__ import annotations

import time
from typing import Any

from dockyard.container.execute import probe
from dockyard.container.records import Container, now
from dockyard.runtime.runc import Runtime

__all__ = ["HealthChecker"]

_SECOND = 1e9
_KEEP = 5


class HealthChecker:
    def __init__(self, ctr: Container, runtime: Runtime, check: dict[str, Any]):
        self.ctr = ctr
        self.runtime = runtime
        test = check["Test"]
        self.args = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        self.interval = check["Interval"] / _SECOND
        self.timeout = check["Timeout"] / _SECOND
        self.start_period = check.get("StartPeriod", 0) / _SECOND
        self.retries = int(check["Retries"])
        self.started = time.monotonic()
        self.due = self.started + self.interval
        self.health: dict[str, Any] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        ctr.save_state(Health=self.health)

    def run_probe(self) -> None:
        start = now()
        code, output = probe(self.ctr, self.runtime, self.args, self.timeout)
        entry = {"Start": start, "End": now(), "ExitCode": code, "Output": output}
        health = self.health
        health["Log"] = (health["Log"] + [entry])[-_KEEP:]
        if code == 0:
            health["Status"], health["FailingStreak"] = "healthy", 0
        elif time.monotonic() - self.started < self.start_period and health["Status"] == "starting":
            pass  # still starting up: failures do not count yet
        else:
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= self.retries:
                health["Status"] = "unhealthy"
        self.ctr.save_state(Health=health)
        self.due = time.monotonic() + self.interval
