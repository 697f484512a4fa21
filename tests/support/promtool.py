"""`promtool check metrics` on an exposition, from the cached build."""

from __future__ import annotations

import subprocess

from runner_sizer.devcluster.binaries import ensure_binaries


def assert_promtool_accepts(exposition: str) -> None:
    promtool = ensure_binaries().promtool
    result = subprocess.run(
        [str(promtool), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
