"""The `vaelab` command line: train, eval, encode, neighbours, sample, plot, score, reproduce, explore, datasets."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from pathlib import Path

from . import distributed
from .cli_args import build_parser, flag
from .config import EXTENDABLE, RUNTIME_OPTIONS
from .configure import TRAIN_FIELDS, build_config, resume_changes
from .data import dataset_status
from .errors import VaelabError
from .explorer import serve
from .models import MODELS
from .runs.run import config_of
from .runs.train import resume_run, train_run
from .recipes import RECIPES, run_recipe
from .storage import read_json
from .machine import set_threads
from .runs.commands import encode_run, evaluate_run, neighbours_run, plot_run, sample_run, score_run


def _explicit_options(argv: list[str]) -> dict:
    """The options the user actually typed (argparse fills in defaults; this parse does not)."""
    parser = build_parser()
    stack = [parser]
    while stack:
        p = stack.pop()
        p._defaults.clear()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def cmd_train(args) -> int:
    given = _explicit_options(args.argv)
    runtime = {}   # typed runtime (and extendable) options, after MODEL or before it
    for k in (*RUNTIME_OPTIONS, *EXTENDABLE):
        if k in given or f"top_{k}" in given:
            runtime[k] = given.get(k, given.get(f"top_{k}"))
            setattr(args, k, runtime[k])
    resume = getattr(args, "resume", None) or args.top_resume
    if resume is not None:
        with distributed.same_on_every_rank():   # option errors: under torchrun, rank 0 reports them
            _check_resume_options(resume, args, given)
        args.run_dir = resume   # for the resume hint if it is interrupted
        run_dir = resume_run(resume, **runtime)
        if distributed.is_main():
            print(f"run folder: {run_dir}\nreport: {run_dir / 'report.md'}\n{headline(run_dir)}")
        return 0
    with distributed.same_on_every_rank():
        if args.model is None:
            raise VaelabError(f"vaelab train needs a MODEL ({', '.join(MODELS)}) or --resume RUN; "
                              f"e.g. `vaelab train vae --iters 5000`")
        cfg, _ = build_config(args.model, args.dataset, args.seeds, args.out, _python_options(vars(args), given))
    try:
        run_dir = train_run(cfg)
    finally:
        args.run_dir = cfg.out   # the folder train_run chose: for the resume hint if it is interrupted
    if distributed.is_main():   # under torchrun: once, not once per process
        print(f"run folder: {run_dir}\nreport: {run_dir / 'report.md'}\n{headline(run_dir)}")
    return 0


HEADLINE = ("nelbo", "loss", "mse", "accuracy", "auc")   # with the IWAE bounds: what a user looks for first


def headline(run_dir: Path) -> str:
    """The run's main test metrics on one line (mean ± SE over its finished seeds)."""
    mean_se = read_json(Path(run_dir) / "metrics.json").get("mean_se", {})
    keys = [k for k in mean_se if k in HEADLINE] + sorted((k for k in mean_se if k.startswith("niwae_")),
                                                           key=lambda k: int(k.split("_")[1]))   # by k
    parts = [f"{k} {v['mean']:.4g}" + (f" ± {v['se']:.2g}" if v.get("n", 1) > 1 else "")
             for k, v in ((k, mean_se[k]) for k in keys)]
    n = max((mean_se[k].get("n", 1) for k in keys), default=0)
    return f"test ({n} seed{'s' * (n != 1)}): " + ", ".join(parts) if parts else "test: no metrics yet"


def _python_options(parsed: dict, typed: dict | None = None) -> dict:
    """The training and model options of a parsed `vaelab train MODEL` line by their Python names (the model's
    own options are parsed as opt_NAME): what configure.build_config takes from Python too. The model's
    options are the ones `typed` holds (default: all parsed), as from Python: a run records what was asked
    for, and an option left out may take its default from the data (Model.options_for_data)."""
    options = {k: v for k, v in parsed.items() if k in TRAIN_FIELDS and k not in ("dataset", "seeds", "out")}
    options.update({k[4:]: v for k, v in parsed.items() if k.startswith("opt_") and (typed is None or k in typed)})
    return options


def _check_resume_options(run: Path, args, given: dict) -> None:
    """`vaelab train MODEL ... --resume RUN`: typed options must agree with the run's saved configuration."""
    if args.model is None or not (Path(run) / "config.json").is_file():
        return   # nothing typed to compare (a missing config.json is reported by resume_run)
    saved = config_of(run)
    if args.model != saved.model:
        raise VaelabError(f"--resume {run}: that run trains {saved.model!r}, not {args.model!r}; "
                          f"use `vaelab train --resume {run}`")
    changed = resume_changes(saved, None, given.get("dataset"), given.get("seeds"),
                             {**_python_options(given), **({"out": given["out"]} if "out" in given else {})})
    if changed:
        listed = "; ".join(f"{flag(k)} (run: {old}, given: {new})" for k, old, new in changed)
        raise VaelabError(f"--resume {run} continues the run with its saved configuration; {listed} cannot "
                          f"change (only --data-dir, --device, --threads, --no-progress and --time-budget can); drop them, "
                          f"or start a new run with another --out")


def cmd_eval(args) -> int:
    path = evaluate_run(args.run, iwae_k=args.iwae_k, repeats=args.eval_repeats, data_dir=args.data_dir,
                        device=args.device, threads=args.threads, progress=args.progress, run_seeds=args.run_seeds,
                        compile=args.compile, codes=args.codes,
                        disentanglement=args.disentanglement)
    print(f"metrics: {args.run / 'metrics.json'}\nreport: {path}\n{headline(args.run)}")
    return 0


def cmd_encode(args) -> int:
    print(encode_run(args.run, out=args.out, run_seed=args.run_seed, dataset=args.dataset, data_dir=args.data_dir,
                     device=args.device, threads=args.threads))
    return 0


def cmd_neighbours(args) -> int:
    path, idx = neighbours_run(args.run, queries=args.query, k=args.k, out=args.out, run_seed=args.run_seed,
                               device=args.device, threads=args.threads)
    for i, row in enumerate(idx):
        print(f"query {args.query[i] if args.query else f'test image {i}'}: training images {' '.join(map(str, row))}")
    print(path)
    return 0


def cmd_sample(args) -> int:
    path = sample_run(args.run, rows=args.rows, cols=args.cols, seed=args.seed, run_seed=args.run_seed,
                      out=args.out, device=args.device, label=args.label, threads=args.threads)
    print(path)
    return 0


def cmd_plot(args) -> int:
    for path in plot_run(args.run, args.figure, run_seed=args.run_seed, tsne=args.tsne, data_dir=args.data_dir,
                         device=args.device, threads=args.threads):
        print(path)
    return 0


def cmd_score(args) -> int:
    s = score_run(args.run, dataset=args.dataset, normal_classes=args.normal_classes, run_seed=args.run_seed,
                  out=args.out, data_dir=args.data_dir, device=args.device, threads=args.threads,
                  repeats=args.eval_repeats)
    auc = (f"ROC AUC {s['auc']:.4f} (normal classes {s['normal_classes']})" if "auc" in s
           else "no AUC (no --normal-classes given, and the run was trained on every class)")
    print(f"{s['n']} scores ({s['score']}) on {s['dataset']}: {auc}\nscores: {s['csv']}")
    return 0


def cmd_reproduce(args) -> int:
    if args.list:
        width = max(map(len, RECIPES))
        for name, r in RECIPES.items():
            print(f"{name:<{width}}  {r.description}\n{'':<{width}}  data: {', '.join(r.data)} (--quick: "
                  f"{', '.join(r.quick_data)})")
        return 0
    if args.name is None:
        raise VaelabError("vaelab reproduce needs a recipe NAME; `vaelab reproduce --list` shows them")
    out = run_recipe(args.name, quick=args.quick, data_dir=args.data_dir, out=args.out, threads=args.threads,
                     progress=args.progress, command="vaelab " + " ".join(args.argv), resume=args.resume)
    print(f"report: {out / 'report.md'}\nreport (HTML, figures embedded): {out / 'report.html'}")
    return 0


def cmd_explore(args) -> int:
    set_threads(args.threads)
    try:
        serve(args.run, host=args.host, port=args.port, open_browser=args.browser, run_seed=args.run_seed,
              data_dir=args.data_dir, device=args.device, verbose=args.verbose)
    except KeyboardInterrupt:
        print("vaelab explore: stopped")
    return 0


def cmd_datasets(args) -> int:
    rows = dataset_status(args.data_dir)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        where = r["where"] if r["found"] else "not found (downloaded on first use when online)"
        print(f"{r['name']:<{width}}  {'yes' if r['found'] else 'no ':<3}  {where}\n{'':<{width}}       {r['description']}")
    return 0


RESUME_RUNTIME = {"--resume": 1, "--data-dir": 1, "--device": 1, "--threads": 1, "--no-progress": 0,
                  "--time-budget": 1}   # option -> takes a value?


def _resume_misuse(argv: list[str]) -> str | None:
    """The message for `vaelab train --resume RUN --lr 0.01` (training options after --resume RUN, no MODEL),
    which argparse would misreport as "argument MODEL: invalid choice: '0.01'"; None for any other command line."""
    if argv[:1] != ["train"] or "-h" in argv or "--help" in argv:
        return None
    extra, resume, i = [], None, 1
    while i < len(argv):
        token = argv[i]
        if token in MODELS:
            return None   # `train --resume RUN MODEL ...`: the options are checked against the saved configuration
        name, has_value = token.split("=", 1)[0], "=" in token
        known = [o for o in RESUME_RUNTIME if o.startswith(name)] if name.startswith("--") else []
        if len(known) == 1:   # (argparse accepts unambiguous abbreviations)
            if known[0] == "--resume":
                resume = token.split("=", 1)[1] if has_value else (argv[i + 1] if i + 1 < len(argv) else None)
            i += 1 + (0 if has_value else RESUME_RUNTIME[known[0]])
            continue
        extra.append(token)
        i += 1
    if resume is None or not extra:
        return None
    named = [t.split("=", 1)[0] for t in extra if t.startswith("-")] or extra
    return (f"--resume {resume} continues the run with its saved configuration, so {' '.join(named)} cannot be "
            f"given; only --data-dir, --device, --threads, --no-progress and --time-budget (to extend the run) may follow "
            f"--resume RUN (to train with "
            f"other options, start a new run: vaelab train MODEL ... --out NEW_FOLDER)")


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")   # the command line draws into files only; the library leaves the backend alone
    argv = sys.argv[1:] if argv is None else list(argv)
    misuse = _resume_misuse(argv)
    if misuse is not None:
        print(f"vaelab: error: {misuse}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    args.argv = argv
    main_thread = threading.current_thread() is threading.main_thread()
    # a SIGTERM (kill, a job scheduler) stops the command as Ctrl-C does; the caller's handler comes back after
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    commands = {"train": cmd_train, "eval": cmd_eval, "encode": cmd_encode, "neighbours": cmd_neighbours,
                "sample": cmd_sample, "plot": cmd_plot, "score": cmd_score,
                "datasets": cmd_datasets, "reproduce": cmd_reproduce,
                "explore": cmd_explore}
    with warnings.catch_warnings():   # the caller's warning display comes back after the command
        warnings.showwarning = _show_warning(warnings.showwarning)
        return _run(args, commands, previous, main_thread)


def _run(args, commands, previous, main_thread: bool) -> int:
    """The command, its errors as one line and exit status 2, Ctrl-C / SIGTERM as 130 / 143."""
    try:
        if distributed.launched() and args.command != "train":
            raise distributed.SharedError(f"only `vaelab train` runs as several processes; run `vaelab "
                                          f"{args.command}` once, without torchrun")
        return commands[args.command](args)
    except VaelabError as e:
        if distributed.is_main() or not isinstance(e, distributed.SharedError):   # a shared error: rank 0 says it
            print(f"vaelab: error: {e.for_cli(flag)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        run = getattr(args, "run_dir", None)
        again = (f"; continue it with `vaelab train --resume {run}` (training goes on from the last "
                 "checkpoint written)"
                 if run and Path(run, "config.json").exists() else "")
        if distributed.is_main():
            print(f"vaelab: {'terminated' if isinstance(e, Terminated) else 'interrupted'}; files already written "
                  f"are complete (checkpoints are written atomically){again}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _show_warning(show):
    """A warning from vaelab's own code as the command line's one line (no Python source location), shown by
    rank 0 alone; any other warning (torch's) as `show`, Python's display, shows it."""
    package = str(Path(__file__).parent)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if not str(filename).startswith(package):
            show(message, category, filename, lineno, file, line)
        elif distributed.is_main():
            print(f"vaelab: warning: {(str(message).strip().splitlines() or [''])[0]}", file=sys.stderr)
    return show_warning


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that it stops as on Ctrl-C: files complete, a resume hint."""


def _terminate(signum, frame) -> None:
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
