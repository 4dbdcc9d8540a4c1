"""The `mmlab` command: env, experiments, experiment, simulate, eras, calibrate, run, compare.

Conventions follow papermill: `-p KEY VALUE` (repeatable) and `-f params.yaml`. Bad input is one line on
stderr naming the parameter and what is allowed, exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence

from mmlab.core.errors import CliError, MmlabError
from mmlab.core.params import ParamError

EXIT_USAGE = CliError.exit_code


def _params(args: argparse.Namespace) -> dict[str, object]:
    values: dict[str, object] = {}
    for path in getattr(args, "file", None) or []:
        import yaml

        try:
            with open(path) as f:
                loaded = yaml.safe_load(f) or {}
        except OSError as e:
            raise CliError(f"-f {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise CliError(f"-f {path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise CliError(f"-f {path}: expected a mapping of parameter names to values")
        values.update({str(k): v for k, v in loaded.items()})
    for key, value in getattr(args, "parameter", None) or []:
        values[key] = value
    for pair in getattr(args, "parameter_pair", None) or []:  # `-p KEY VALUE` as rewritten by _protect_values
        key, value = json.loads(pair)
        values[key] = value
    return values


def _print_table(rows: list[tuple[str, str]], out=sys.stdout) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    for k, v in rows:
        print(f"{k:<{width}}  {v}", file=out)


def _print_rows(df, as_json: bool, as_csv: bool = False, table: bool = False) -> None:
    """Rows for machines (--json: a list of objects; --csv), or for a person: a short table per point
    (`table`, real experiments) or the rows themselves (simulations: one row per point already)."""
    if as_json:
        print(df.to_json(orient="records", double_precision=15))
    elif as_csv:
        df.to_csv(sys.stdout, index=False)
    elif table:
        from mmlab.study.console import tables

        print(tables(df))
    else:
        import pandas as pd

        with pd.option_context("display.max_columns", 20, "display.width", 160):
            print(df.to_string(index=False, max_rows=60))


def cmd_env(args) -> int:
    from mmlab import experiments
    from mmlab.kernel import env

    e = env.capture(experiments.availability())
    if args.json:
        print(json.dumps(e, indent=1, default=str))
    else:
        _print_table(env.table(e))
    return 0


def cmd_experiments(args) -> int:
    from mmlab import experiments as ex

    listing = []
    for name in ex.names():
        e = ex.get(name)
        listing.append({"name": name, "description": e.description, "parameters": e.Params.describe()})
    if args.json:
        print(json.dumps(listing, indent=1))
        return 0
    for item in listing:
        print(f"{item['name']}: {item['description']}")
        for prm in item["parameters"]:
            unit = f" [{prm['unit']}]" if prm["unit"] else ""
            print(f"  {prm['name']:<14} default {prm['default']:<22} {prm['help']}{unit}; allowed: {prm['allowed']}")
        print()
    return 0


def cmd_experiment(args) -> int:
    from mmlab import experiments as ex

    values = _params(args)
    if args.repeats is not None:
        values["repeats"] = args.repeats
    result = ex.run(args.name, values, save=not args.no_save, progress=not args.json and sys.stderr.isatty())
    if result.skipped:
        print(f"mmlab: {args.name} skipped: {result.skipped}", file=sys.stderr)
        if args.json:
            print("[]")
        return 0
    _print_rows(result.rows, args.json, args.csv, table=True)
    if result.run_dir is not None:
        print(f"mmlab: stored {len(result.rows)} rows in {result.run_dir}", file=sys.stderr)
    return 0


def cmd_simulate(args) -> int:
    from mmlab import sim

    if args.scenario not in sim.SCENARIOS:
        raise ParamError("scenario", args.scenario, ", ".join(sim.SCENARIOS), "is not a simulated scenario")
    scenario = sim.SCENARIOS[args.scenario]
    params = scenario.Params.from_mapping(_params(args))
    df = scenario.simulate(params)
    if args.save:
        from mmlab.core import store
        from mmlab.kernel import env

        run_dir = store.save({args.scenario: df}, {args.scenario: params.to_dict()}, env.capture())
        print(f"mmlab: stored {len(df)} rows in {run_dir}", file=sys.stderr)
    _print_rows(df, args.json, args.csv)
    return 0


def cmd_eras(args) -> int:
    from mmlab.sim.era_facts import BEHAVIOURS
    from mmlab.sim.eras import ERAS

    if args.json:
        print(json.dumps([e.to_dict() for e in ERAS], indent=1))
        return 0
    for e in ERAS:
        variant = f" (variant of {e.variant_of})" if e.variant_of else ""
        print(f"{e.name}{variant}: {e.versions}\n  {e.title}")
        for key, what in BEHAVIOURS.items():
            f = e.facts[key]
            print(f"  {what}: {f.value}: {f.text}\n    source: {f.source}")
        print()
    return 0


def cmd_calibrate(args) -> int:
    from mmlab.kernel import confine  # a root tool writes only inside the project's folders
    from mmlab.sim import calibrate
    calibrate.main_calibrate(confine.inside("--out", args.out) if args.out else None)
    return 0


def cmd_run(args) -> int:
    from mmlab.core import paths
    from mmlab.core.store import new_run_id

    # the report folder's name is confined; an interrupted report is renamed <id>.incomplete
    from mmlab.kernel import confine
    from mmlab.study import runner

    run_id = confine.safe_name("run-id", args.run_id) if args.run_id is not None else new_run_id()
    try:
        return runner.main(args.notebooks, _params(args), show_code=args.show_code, run_id=run_id)
    except KeyboardInterrupt:
        out = paths.reports_dir() / run_id
        if out.is_dir():
            out.rename(out.with_name(f"{run_id}.incomplete"))
        raise


def cmd_compare(args) -> int:
    from mmlab.study import compare

    return compare.main(args.runs, as_json=args.json, reference=args.reference)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="mmlab", description=__doc__.splitlines()[0])  # one-line usage errors
    sub = ap.add_subparsers(dest="command", required=True)

    def with_params(p):
        p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                       help="set a parameter (repeatable), e.g. -p sizes 64MiB")
        p.add_argument("-f", "--file", action="append", metavar="YAML", help="parameters from a YAML file")
        p.add_argument("--parameter-pair", action="append", help=argparse.SUPPRESS)  # see _protect_values
        return p

    p = sub.add_parser("env", help="the environment of this machine and what can run here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_env)
    p = sub.add_parser("experiments", help="list the real experiments with their parameters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_experiments)
    p = with_params(sub.add_parser("experiment", help="run one real experiment and store its rows"))
    p.add_argument("name")
    p.add_argument("--repeats", type=int, help="measured repetitions per point")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list of objects")
    p.add_argument("--csv", action="store_true", help="print the rows as CSV")
    p.add_argument("--no-save", action="store_true", help="do not store the run")
    p.set_defaults(fn=cmd_experiment)
    p = with_params(sub.add_parser("simulate", help="run one simulated scenario"))
    p.add_argument("scenario")
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", action="store_true", help="print the rows as CSV")
    p.add_argument("--save", action="store_true", help="store the rows as a run")
    p.set_defaults(fn=cmd_simulate)
    p = sub.add_parser("eras", help="the simulated kernel eras: versions, behaviours, and the source of each")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_eras)
    p = sub.add_parser("calibrate", help="fit this machine's cost profile from stored real runs")
    p.add_argument("--out", help="where to write the profile JSON")
    p.set_defaults(fn=cmd_calibrate)
    p = with_params(sub.add_parser("run", help="execute the notebooks and publish HTML reports"))
    p.add_argument("notebooks", nargs="*", help="notebook names or paths (default: all in notebooks/)")
    p.add_argument("--show-code", action="store_true", help="for authors: publish with code cells open (readers get them folded)")
    p.add_argument("--hide-code", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("compare", help="compare stored runs (hosts, kernels)")
    p.add_argument("runs", nargs="*", help="run ids or run folders")
    p.add_argument("--reference", action="store_true",
                   help="this machine (the runs named, else its newest run of each experiment) beside the reference machine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_compare)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every mmlab error is one line on stderr and its own exit code (see core/errors)."""
    import warnings

    os.umask(os.umask(0o022) | 0o022)  # nothing mmlab writes is group- or world-writable
    previous = _stop_on_sigterm()

    # mmlab's own warnings (sizes dropped, run folders skipped) as one line each on stderr
    warnings.formatwarning = lambda message, category, *_a, **_k: f"mmlab: {category.__name__}: {message}\n"
    parser = build_parser()
    try:
        args = parser.parse_args(_protect_values(sys.argv[1:] if argv is None else list(argv)))
        return args.fn(args)
    except MmlabError as e:
        print(f"mmlab: {e.label}: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `mmlab ... | head`: the reader left; no traceback (what was stored stays)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as e:  # any other file mmlab could not write or read (a report on a full disk)
        where = f"{e.filename}: " if e.filename else ""
        print(f"mmlab: error: {where}{e.strerror or _one_line(e)}", file=sys.stderr)
        return 1
    except Terminated:
        print("mmlab: terminated (SIGTERM); children killed and reaped, nothing half-written", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("mmlab: interrupted; children killed and reaped, nothing half-written", file=sys.stderr)
        return 130
    finally:
        _restore_signals(previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean unwinding as Ctrl-C: children killed and reaped through their
    `with` blocks, memory cgroups removed, a store write in progress left as `<id>.incomplete`."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit code 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"mmlab: error: {self.prog}: {_one_line(message)}\n")


def _protect_values(argv: list[str]) -> list[str]:
    """`-p KEY VALUE` -> one `--parameter-pair=[KEY, VALUE]` token, so a VALUE such as `-1MiB` or `-3e-5`
    reaches the parameter's own check (one line naming it) instead of argparse mistaking it for an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--":
            out += argv[i:]
            break
        if argv[i] in ("-p", "--parameter") and i + 2 < len(argv):
            out.append("--parameter-pair=" + json.dumps([argv[i + 1], argv[i + 2]]))
            i += 3
            continue
        out.append(argv[i])
        i += 1
    return out


def _one_line(e: object) -> str:
    return " ".join(str(e).split())


def _stop_on_sigterm():
    """SIGINT and SIGTERM raise KeyboardInterrupt / Terminated in the main thread; while that unwinds
    (killing children, removing cgroups) further SIGINT/SIGTERM are ignored so cleanup is not cut short."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    return signal.signal(signal.SIGINT, stop), signal.signal(signal.SIGTERM, stop)


def _restore_signals(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


if __name__ == "__main__":
    sys.exit(main())
