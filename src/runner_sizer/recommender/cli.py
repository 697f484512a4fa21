"""`runner-sizer-recommender`: validate settings, then serve; or `backtest`, `generate-trace`,
`export-trace`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from runner_sizer.kube.kubeconfig import KubeConfigError, kubeconfig_problem
from runner_sizer.observability.logs import configure_logging
from runner_sizer.options import OptionError, duration, setting
from runner_sizer.recommender.backtest import (
    STRATEGIES,
    Defaults,
    TraceError,
    backtest,
    quantity_bytes,
    read_trace,
)
from runner_sizer.recommender.ooms import OomSourceError
from runner_sizer.recommender.server import RecommenderServer
from runner_sizer.recommender.settings import ENV_PREFIX, RecommenderSettings, load_settings
from runner_sizer.recommender.trace import generate, write_trace
from runner_sizer.webhook.quantity import QuantityError

if TYPE_CHECKING:
    from runner_sizer.recommender.export import Exported

PROG = "runner-sizer-recommender"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _backtest(argv: Sequence[str]) -> int:
    parser = _Parser(prog=f"{PROG} backtest", description="Replay a CSV trace of past runs.")
    parser.add_argument("--trace", required=True, help="the CSV trace (- for stdin)")
    parser.add_argument(
        "--strategy",
        action="append",
        help=f"one of {', '.join(STRATEGIES)}; repeat for several (default: all)",
    )
    parser.add_argument("--default-cpu", default="1", help="static cpu request (default: 1)")
    parser.add_argument("--default-memory", default="2Gi", help="static memory (default: 2Gi)")
    args = parser.parse_args(argv)
    for name in args.strategy or ():
        if name not in STRATEGIES:
            raise _UsageError(f"--strategy: {name!r} is not one of {', '.join(STRATEGIES)}")
    try:
        cpu = quantity_bytes(args.default_cpu)
    except QuantityError as error:
        raise _UsageError(f"--default-cpu: {error}") from None
    try:
        memory = quantity_bytes(args.default_memory)
    except QuantityError as error:
        raise _UsageError(f"--default-memory: {error}") from None
    if cpu <= 0 or memory <= 0:
        raise _UsageError("--default-cpu and --default-memory must be positive")
    try:
        if args.trace == "-":
            trace = read_trace(sys.stdin)
        else:
            with Path(args.trace).open(newline="", encoding="utf-8") as stream:
                trace = read_trace(stream)
    except OSError as error:
        raise _UsageError(f"--trace: {error.strerror}: {args.trace}") from None
    except (TraceError, UnicodeDecodeError) as error:
        raise _UsageError(f"--trace {args.trace}: {error}") from None
    for result in backtest(trace, args.strategy or list(STRATEGIES), Defaults(cpu, memory)):
        print(json.dumps(result))
    return 0


def _generate_trace(argv: Sequence[str]) -> int:
    parser = _Parser(prog=f"{PROG} generate-trace", description="Write a synthetic CSV trace.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--output", default="-", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    if args.projects < 1 or args.days <= 0:
        raise _UsageError("--projects and --days must be positive")
    trace = generate(seed=args.seed, projects=args.projects, days=args.days)
    if args.output == "-":
        write_trace(trace, sys.stdout)
    else:
        with Path(args.output).open("w", encoding="utf-8") as stream:
            write_trace(trace, stream)
    return 0


def _checked_settings(argv: Sequence[str]) -> RecommenderSettings:
    """The server's settings, with the start-up checks that need no network."""
    settings = load_settings(argv)
    token_file = settings.read_token_file
    if token_file is not None and not token_file.read_text().strip():
        raise OptionError(f"{setting(ENV_PREFIX, 'read-token-file')}: {token_file} is empty")
    problem = settings.oom_configmap and kubeconfig_problem(settings.kubeconfig, os.environ)
    if problem:
        raise OptionError(f"{setting(ENV_PREFIX, 'kubeconfig')}: {problem}")
    return settings


def _export_trace(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog=f"{PROG} export-trace",
        description="Write the runs a Prometheus holds, and the recorder's OOM kills, as a "
        "backtest trace (CSV).",
        epilog="Every server flag applies too (--prometheus-url, --label-matchers, "
        "--identity-source, --container, --step, --oom-configmap, --kubeconfig, ...), "
        "and so do the RECOMMENDER_* variables.",
    )
    parser.add_argument("--since", default="14d", help="how far back (default: 14d)")
    parser.add_argument("--output", default="-", help="file to write (default: stdout)")
    args, rest = parser.parse_known_args(argv)
    try:
        since = duration(args.since)
    except ValueError as error:
        raise _UsageError(f"--since: {error}") from None
    try:
        settings = _checked_settings(rest)
    except OptionError as error:
        raise _UsageError(str(error)) from None
    # Imported here: requests (ssl) must not be loaded in the server's gunicorn master,
    # before its gevent worker patches ssl.
    from runner_sizer.recommender.prometheus import PrometheusError  # noqa: PLC0415

    try:
        exported = _export(settings, since)
    except (PrometheusError, OomSourceError, KubeConfigError) as error:
        print(f"{PROG} export-trace: {error}", file=sys.stderr)
        return 1
    if args.output == "-":
        write_trace(exported.trace, sys.stdout)
    else:
        with Path(args.output).open("w", encoding="utf-8") as stream:
            write_trace(exported.trace, stream)
    _summary(exported, sys.stderr)
    return 0


def _export(settings: RecommenderSettings, since: float) -> Exported:
    from runner_sizer.recommender.export import export_trace  # noqa: PLC0415
    from runner_sizer.recommender.ledger import Ledger  # noqa: PLC0415
    from runner_sizer.recommender.oom_source import oom_reader  # noqa: PLC0415
    from runner_sizer.recommender.prometheus import PrometheusClient  # noqa: PLC0415
    from runner_sizer.recommender.refresher import read_usage  # noqa: PLC0415
    from runner_sizer.webhook.watched import TokenSource  # noqa: PLC0415

    token = settings.prometheus_token_file
    client = PrometheusClient(
        settings.prometheus_url,
        timeout=settings.query_timeout,
        token=TokenSource(path=token) if token is not None else None,
        ca_file=settings.prometheus_ca_file,
    )
    now = time.time()
    ledger = Ledger()
    read_usage(client, settings, ledger, now - since, now)
    ledger.settle(now, since)
    reader = oom_reader(settings)
    records = reader() if reader is not None else []
    return export_trace(ledger.runs.values(), records, settings.strategy)


def _summary(exported: Exported, stream: TextIO) -> None:
    killed = sum(row.oom_killed for row in exported.trace)
    print(
        f"{len(exported.trace)} runs, {killed} OOM-killed ({exported.lone_kills} with no "
        f"usage seen); left out: {exported.incomplete_runs} runs with one CPU sample or no "
        f"peak, {exported.unusable_kills} kills with no run and no memory bound",
        file=stream,
    )


SUBCOMMANDS = {
    "backtest": _backtest,
    "generate-trace": _generate_trace,
    "export-trace": _export_trace,
}


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] in SUBCOMMANDS:
        try:
            return SUBCOMMANDS[arguments[0]](arguments[1:])
        except _UsageError as error:
            print(f"{PROG} {arguments[0]}: {error}", file=sys.stderr)
            return 2
    try:
        settings = _checked_settings(arguments)
    except OptionError as error:
        print(f"{PROG}: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    RecommenderServer(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
