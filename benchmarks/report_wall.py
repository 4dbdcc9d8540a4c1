"""Wall time of `mmlab run` at defaults, per notebook (benchmark, not a test).

Runs the whole collection as `make report` does (or reads an existing report with --report DIR) and
prints each notebook's wall time from reports/<run-id>/run.json. Target on a 2-core, 24 GiB machine:
the whole collection under 5 minutes, so a report is rebuilt while one waits.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TARGET_S = 300.0


def table(run: dict) -> list[str]:
    """One line per notebook (name, status, seconds) and the total, from a report's run.json."""
    lines = [f"{'notebook':<28} {'status':<7} {'wall (s)':>9}"]
    for nb in run["notebooks"]:
        lines.append(f"{nb['name']:<28} {'ok' if nb['ok'] else 'FAILED':<7} {nb['wall_s']:>9.1f}")
    total = run.get("wall_s") or sum(nb["wall_s"] for nb in run["notebooks"])
    verdict = "within" if total <= TARGET_S else "OVER"
    lines.append(f"{'whole run':<28} {'':<7} {total:>9.1f}  ({verdict} the {TARGET_S:.0f} s target)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, help="an existing reports/<run-id> folder instead of a new run")
    args = ap.parse_args(argv)
    report = args.report
    if report is None:
        r = subprocess.run([sys.executable, "-m", "mmlab", "run"], stdout=subprocess.PIPE, text=True)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        if not last.startswith("HTML index: "):
            print("mmlab run printed no index", file=sys.stderr)
            return 1
        report = Path(last.removeprefix("HTML index: ")).parent
    run = json.loads((report / "run.json").read_text())
    print(f"mmlab run at defaults: {report}")
    print("\n".join(table(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
