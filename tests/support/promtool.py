"""promtool from the cached build."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runner_sizer.devcluster.binaries import ensure_binaries


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> None:
    """Run `promtool ARGS`; fail the test with its output unless it succeeds."""
    result = subprocess.run(
        [str(ensure_binaries().promtool), *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def assert_promtool_accepts(exposition: str) -> None:
    promtool("check", "metrics", stdin=exposition)
