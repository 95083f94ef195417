"""Chaos soak of `hourcast up --replay`: the whole stack at high replay speed over ``--days`` simulated days
while a driver with a fixed ``--seed`` injects exchange faults (429, 503, slow, malformed, duplicate,
missing) at random, SIGKILLs parts of the stack at random moments (``--kill``: a flow run's process, an API
worker, the Prefect worker, the Prefect server, Redis), restarts what `hourcast up` does not restart itself,
and probes /predict and /readyz. At the end (clock frozen, runs settled) it checks: candles lost, duplicated
or changed against the recorded files (must be 0), holes of the recordings, pending quarantine entries for
stored candles, hours with a forecast of record vs hours the stack was up (and scored), the probe's
availability per fault kind, and every Prefect flow run in a final state. The driver and the checks are
``tests.support.soak`` (the suite's short soak, tests/integration/test_soak.py, uses the same).

Run: nice -n 10 uv run python benchmarks/soak.py --days 14
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from _common import argument_parser, write_results

from tests.support.soak import KILL_KINDS, SoakConfig, run_soak


def main() -> None:
    parser = argument_parser(__doc__, "soak")
    parser.add_argument("--days", type=float, default=14.0, help="simulated days (default %(default)s)")
    parser.add_argument("--speed", type=float, default=60.0, help="replay speed (default %(default)s)")
    parser.add_argument("--seed", type=int, default=22, help="seed of the chaos plan (default %(default)s)")
    parser.add_argument("--faults-per-day", type=float, default=6.0, help="(default %(default)s)")
    parser.add_argument("--kills-per-day", type=float, default=3.0, help="(default %(default)s)")
    parser.add_argument(
        "--kill",
        action="append",
        choices=KILL_KINDS,
        help="a kind of part to kill (repeatable; default: every kind)",
    )
    parser.add_argument(
        "--train-days", type=int, default=30, help="first model's window (default %(default)s)"
    )
    parser.add_argument("--serve-workers", type=int, default=2, help="API workers (default %(default)s)")
    parser.add_argument("--home", type=Path, default=None, help="data folder (default: a new temporary one)")
    args = parser.parse_args()
    kinds = tuple(args.kill or KILL_KINDS)
    home = args.home or Path(tempfile.mkdtemp(prefix="hourcast-soak-"))
    config = SoakConfig(
        home=home,
        days=args.days,
        speed=args.speed,
        seed=args.seed,
        faults_per_day=args.faults_per_day,
        kills_per_day=args.kills_per_day,
        kill_kinds=kinds,
        train_days=args.train_days,
        serve_workers=args.serve_workers,
        redis="redis" in kinds,
    )
    started = time.monotonic()
    figures = run_soak(config)
    figures["config"] = {k: str(v) for k, v in vars(config).items()}
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    figures["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    figures["home"] = str(home)
    write_results(args.output, figures)


if __name__ == "__main__":
    main()
