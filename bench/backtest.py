"""`make bench` (backtest part): every strategy on generated traces, one JSON line each.

`python -m bench.backtest [SEED ...]` (default seeds 1 2 3): the trace's calibration
figures, then the table `runner-sizer-recommender backtest` prints, per seed.
"""

from __future__ import annotations

import json
import sys

from runner_sizer.recommender.backtest import STRATEGIES, Defaults, backtest
from runner_sizer.recommender.trace import calibration, generate


def main(argv: list[str]) -> int:
    for seed in [int(a) for a in argv] or [1, 2, 3]:
        trace = generate(seed=seed)
        print(json.dumps({"seed": seed, "runs": len(trace), **calibration(trace)}))
        for result in backtest(trace, list(STRATEGIES), Defaults()):
            print(json.dumps({"seed": seed, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
