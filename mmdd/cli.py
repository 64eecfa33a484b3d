"""The ``mmdd`` command line: run, prepare, experts, eval, show, export, compare, predict, tune, recipes."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from mmdd import compare, export  # the sub-command modules import only the standard library at load time


def _again(args, *extra: str) -> str:
    """The command line that repeats this one (recipe and overrides as given), plus ``extra``."""
    return shlex.join(["mmdd", args.command, str(args.recipe), *args.overrides, *extra])


def _precheck(args) -> None:
    """Misspelt keys are refused before torch and the domains are imported (about a second)."""
    from mmdd.raw_recipe import precheck

    precheck(args.recipe, args.overrides)


def _cmd_run(args) -> int:
    _precheck(args)
    from mmdd.run import distill

    run = distill(args.recipe, args.overrides, resume=args.resume, overwrite=args.overwrite,
                  evaluate=not args.no_eval, stop_after=args.stop_after, progress=not args.quiet)
    if not run.writer:  # a torchrun rank other than 0: rank 0 wrote the run and prints it
        return 0
    m = run.manifest
    if m["status"] != "complete":
        print(f"stopped after step {m['steps_completed']} of {run.config.method.iterations}; "
              f"continue with: {_again(args, '--resume')}")
    else:
        print(f"\n{run.config.name}: {run.config.method.name} on {run.config.dataset.name}, "
              f"{run.config.budget.ipc} per class, {m['storage_bytes']:,} bytes (×{m['compression_ratio']:.1f} smaller)")
        if m.get("evaluation"):
            print()
            print(run.table())
            first = next(iter(m["evaluation"].values()))
            print(f"\nprotocol: {first['protocol']}")
    print(f"\nrun directory: {run.dir}")
    return 0


def _cmd_prepare(args) -> int:
    _precheck(args)
    from mmdd.prepare import describe, prepare

    print(describe(prepare(args.recipe, args.overrides)))
    return 0


def _cmd_experts(args) -> int:
    _precheck(args)
    from mmdd.experts import generate_experts

    buffer = generate_experts(args.recipe, args.overrides, progress=not args.quiet)
    if buffer is not None:
        print(f"{len(buffer.experts)} experts × {buffer.num_epochs} epochs in {buffer.root}")
    return 0


def _cmd_eval(args) -> int:
    from mmdd.run import evaluate_run

    baselines = None if args.baselines is None else [b for b in args.baselines.split(",") if b]
    run = evaluate_run(args.run_dir, baselines=baselines, seeds=args.seeds, progress=not args.quiet)
    print(run.table())
    print(f"\nupdated {Path(run.dir) / 'manifest.json'} and report.md")
    return 0


def _cmd_show(args) -> int:
    from mmdd.run import open_run, write_report

    run = open_run(args.run_dir)
    report = write_report(run)
    html_path = Path(run.dir) / "report.html"
    if args.open:
        print(html_path.resolve())
    else:
        print(f"wrote {html_path} and {report}")
    return 0


def _cmd_predict(args) -> int:
    _precheck(args)
    from mmdd.predict import curve_table, efficacy_curve, save_curve

    budgets = [int(b) for b in args.budgets.split(",") if b] if args.budgets else None
    curve = efficacy_curve(args.recipe, args.overrides, budgets=budgets, full=not args.no_full,
                           progress=not args.quiet)
    print(f"random subsets of {curve['dataset']} ({curve['recipe']}): the closer a budget gets to the whole "
          "data, the less distillation can add there\n")
    print(curve_table(curve))
    print(f"\nprotocol: {curve['protocol']}")
    if args.out:
        print(f"saved {save_curve(curve, args.out)}")
    return 0


def _cmd_tune(args) -> int:
    _precheck(args)
    from mmdd.tune import tune

    params = [k for k in args.params.split(",") if k] if args.params else None
    result = tune(args.recipe, args.overrides, trials=args.trials, out=args.out, storage=args.storage,
                  study_name=args.study, params=params, seed=args.seed, startup_trials=args.startup_trials,
                  timeout_s=args.timeout,
                  progress=not args.quiet)
    print(f"\nbest validation score {100 * result.best_score:.2f} %: " +
          ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(result.best_params.items())))
    print(f"trials: {result.trials_file}\nprofile: {result.profile_file}\nrun it: {result.run_command}")
    return 0


def _cmd_recipes(args) -> int:
    from mmdd.catalog import list_recipes

    if args.parts:
        from mmdd.plugins import catalog

        parts = catalog()
        for domain, datasets in parts["datasets"].items():
            print(f"{domain}")
            print(f"  datasets: {', '.join(datasets) or '(none)'}")
            for kind in ("methods", "networks", "synthetic"):
                own = [n for n, origin in parts[kind].items() if origin == domain]
                if own:
                    print(f"  {kind} of its own: {', '.join(own)}")
        for kind in ("methods", "networks", "synthetic"):
            shared = [n for n, origin in parts[kind].items() if origin == "core"]
            print(f"shared {kind} (core): {', '.join(shared)}")
        return 0
    infos = list_recipes()
    width = max((len(i.name) for i in infos), default=0)
    for info in infos:
        print(f"{info.name.ljust(width)}  {info.description}")
    return 0


class _IntermixedParser(argparse.ArgumentParser):
    """A sub-command's parser: flags and positionals (``KEY=VALUE`` overrides) in any order.

    ``mmdd run quickstart --no-eval budget.ipc=1`` reads like ``mmdd run quickstart budget.ipc=1
    --no-eval``. The top-level parser cannot parse intermixed (it has sub-commands), but the
    sub-command's parser is called through ``parse_known_args``, so that is where it happens.
    """

    _parsing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._parsing:  # parse_known_intermixed_args's own passes (Python < 3.13)
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmdd", description="Multi-modal dataset distillation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_IntermixedParser)

    run = sub.add_parser("run", help="distil a dataset as a recipe says, evaluate, write the run directory "
                                     "(under torchrun: the iterations' draws spread over the processes)")
    run.add_argument("recipe", help="recipe file or shipped recipe name (see `mmdd recipes`)")
    run.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                     help="override recipe values, e.g. budget.ipc=1 (before or after the flags)")
    run.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run in the output directory")
    run.add_argument("--no-eval", action="store_true", help="skip evaluation (run `mmdd eval RUN_DIR` later)")
    run.add_argument("--stop-after", type=int, default=None, metavar="N",
                     help="stop after N steps (a checkpoint is kept; continue with --resume)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    prep = sub.add_parser("prepare", help="decode a recipe's dataset once, ahead of its runs (the on-disk store "
                                          "with dataset.storage=store; run it once before torchrun)")
    prep.add_argument("recipe")
    prep.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE")
    prep.set_defaults(func=_cmd_prepare)

    ex = sub.add_parser("experts", help="train the expert trajectories a trajectory-matching recipe needs")
    ex.add_argument("recipe")
    ex.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE")
    ex.add_argument("--quiet", action="store_true")
    ex.set_defaults(func=_cmd_experts)

    ev = sub.add_parser("eval", help="train fresh models on a run's distilled set and its baselines")
    ev.add_argument("run_dir")
    ev.add_argument("--seeds", type=int, default=None, help="number of evaluation seeds (default: the recipe's)")
    ev.add_argument("--baselines", default=None, help="comma list of random,herding,kcenter,full ('' for none)")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=_cmd_eval)

    show = sub.add_parser("show", help="(re)build a run's report.html and report.md with its sample renders")
    show.add_argument("run_dir")
    show.add_argument("--open", action="store_true", help="print only report.html's path (for a browser)")
    show.set_defaults(func=_cmd_show)

    pr = sub.add_parser("predict", help="random-subset accuracy at several budgets: how much distillation can add")
    pr.add_argument("recipe")
    pr.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE")
    pr.add_argument("--budgets", default=None, help="comma list of per-class budgets (default 1,2,5,10,20,50,100)")
    pr.add_argument("--no-full", action="store_true", help="skip training on the whole training split")
    pr.add_argument("--out", default=None, help="also save the curve as JSON here")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=_cmd_predict)

    tu = sub.add_parser("tune", help="search a recipe's settings on the validation split (Optuna); "
                                     "writes the winner as a profile file")
    tu.add_argument("recipe")
    tu.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE")
    tu.add_argument("--trials", type=int, default=20, help="trials this process runs (default 20)")
    tu.add_argument("--out", default=None, help="where the profile, the trial table and the trial runs go "
                                                "(default tune/<recipe name>)")
    tu.add_argument("--storage", default=None, help="Optuna storage URL shared by processes searching together "
                                                    "(default sqlite:///<out>/study.db)")
    tu.add_argument("--study", default=None, help="study name in the storage (default: the recipe name)")
    tu.add_argument("--params", default=None, help="comma list of the keys to search (default: the method's)")
    tu.add_argument("--seed", type=int, default=0, help="the sampler's seed (give each process its own)")
    tu.add_argument("--startup-trials", type=int, default=10,
                    help="trials drawn at random before TPE models the scores (default 10, Optuna's); a study of "
                         "no more trials than this is a random search")
    tu.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    tu.add_argument("--quiet", action="store_true")
    tu.set_defaults(func=_cmd_tune)

    recipes = sub.add_parser("recipes", help="list the shipped recipes (--parts: datasets, methods, networks)")
    recipes.add_argument("--parts", action="store_true",
                         help="list what a recipe can name instead: each domain's datasets, the methods, networks "
                              "and synthetic kinds (core's and each domain's own)")
    recipes.set_defaults(func=_cmd_recipes)
    compare.add_parser(sub)
    export.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mmdd.core.errors import MMDDError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MMDDError as exc:
        print(f"mmdd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nmmdd: interrupted{_interrupted(args)}", file=sys.stderr)
        return 130


def _interrupted(args) -> str:
    """What an interrupted command leaves behind and how to go on (after "interrupted")."""
    if args.command == "run":
        return f"; the last checkpoint is kept (continue with: {_again(args, '--resume')})"
    if args.command == "experts":
        return f"; finished experts are kept in the buffer (rerun {_again(args)} to train the rest)"
    if args.command == "eval":
        return (f"; {Path(args.run_dir) / 'manifest.json'} holds the previous evaluation results unless some sets "
                f"had already finished (then it holds those); evaluate again with: "
                f"{shlex.join(['mmdd', 'eval', str(args.run_dir)])}")
    return ""


if __name__ == "__main__":
    sys.exit(main())
