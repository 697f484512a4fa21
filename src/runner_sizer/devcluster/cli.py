"""`runner-sizer-cluster up|down|status`: the local control plane from a shell.

`status` says whether the control plane `up` started is still running, and its kubeconfig.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runner_sizer.devcluster.binaries import REPO_ROOT, BinariesUnavailableError, ensure_binaries
from runner_sizer.devcluster.cluster import (
    DEFAULT_NODES,
    LocalCluster,
    stop_from_state,
    stopped_components,
)
from runner_sizer.options import package_version

DEFAULT_STATE = REPO_ROOT / ".cache" / "cluster" / "state.json"


def _up(state_file: Path, nodes: int) -> int:
    if state_file.exists():
        print(f"a cluster is already up (state in {state_file}); run `down` first", file=sys.stderr)
        return 1
    try:
        binaries = ensure_binaries()
    except BinariesUnavailableError as error:
        print(error, file=sys.stderr)
        return 3
    names = [*DEFAULT_NODES, *(f"node-{i}" for i in range(len(DEFAULT_NODES), nodes))][:nodes]
    cluster = LocalCluster(binaries, node_names=names).start()
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(cluster.to_state(), indent=2))
    print(f"cluster up in {cluster.started_in_seconds:.1f}s at {cluster.server}", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def _down(state_file: Path) -> int:
    if not state_file.exists():
        print("no local cluster is up", file=sys.stderr)
        return 0
    stop_from_state(json.loads(state_file.read_text()))
    state_file.unlink()
    print("cluster stopped", file=sys.stderr)
    return 0


def _status(state_file: Path) -> int:
    """0 and the kubeconfig export if every component runs; 1 otherwise."""
    if not state_file.exists():
        print("no local cluster is up", file=sys.stderr)
        return 1
    state = json.loads(state_file.read_text())
    stopped = stopped_components(state)
    if stopped:
        print(
            f"cluster at {state['server']} is broken: {', '.join(stopped)} not running; "
            "run `down`, then `up`",
            file=sys.stderr,
        )
        return 1
    print(f"cluster up at {state['server']}", file=sys.stderr)
    print(f"export KUBECONFIG={state['kubeconfig']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runner-sizer-cluster", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-file", type=Path, default=DEFAULT_STATE, help="default: %(default)s"
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=len(DEFAULT_NODES),
        help="nodes for `up` (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return _up(args.state_file, args.nodes)
    if args.command == "status":
        return _status(args.state_file)
    return _down(args.state_file)


if __name__ == "__main__":
    sys.exit(main())
