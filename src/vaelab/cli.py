"""The `vaelab` command line: train, eval, sample, score, datasets."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import VaelabError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option gets one line (not the whole usage) naming the fix."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {s}")
    return v


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder holding data sets as DIR/mnist/, DIR/fashion-mnist/ "
                   "(default: $VAELAB_DATA, then the user cache, then /usr/share/datasets)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default: %(default)s)")
    p.add_argument("--threads", type=_positive_int, help="CPU threads for PyTorch (default: all cores)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from .models import MODELS
    from .train import BINARIZE_MODES, OPTIMIZERS, TrainConfig

    d = TrainConfig()
    parser = Parser(prog="vaelab", description="Autoencoders and variational autoencoders.")
    parser.add_argument("--version", action="version", version=f"vaelab {__import__('vaelab').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    train = sub.add_parser("train", help="train a model (one run folder, one or more seeds)")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL", parser_class=Parser)
    for name, (cls, options) in MODELS.items():
        p = models.add_parser(name, help=(cls.__doc__ or name).strip().splitlines()[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.add_argument("--dataset", default=d.dataset, help="data set name (see `vaelab datasets`)")
        p.add_argument("--out", help="run folder to create (default: runs/MODEL-DATASET-TIMESTAMP)")
        p.add_argument("--seeds", type=int, nargs="+", default=d.seeds, help="one training run per seed")
        p.add_argument("--seed", type=int, dest="seeds", nargs=1, help="a single seed (same as --seeds S)")
        p.add_argument("--iters", type=_positive_int, default=d.iters, help="training iterations")
        p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
        p.add_argument("--lr", type=_positive_float, default=d.lr, help="learning rate")
        p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                       help="auto: AdamW for autoencoders, Adam for VAEs")
        p.add_argument("--binarize", choices=("auto", *BINARIZE_MODES), default=d.binarize,
                       help="training images: fresh Bernoulli draw per batch, one fixed draw, or grey levels; "
                            "auto: none for continuous data and autoencoders, dynamic otherwise")
        p.add_argument("--classes", type=int, nargs="+", dest="train_classes",
                       help="train only on these classes (e.g. one-class anomaly detection); the test set stays whole")
        p.add_argument("--fresh-batches", action="store_true",
                       help="toy data: draw fresh points for every batch instead of the fixed training sample")
        p.add_argument("--val-size", type=_nonneg_int, default=d.val_size,
                       help="validation images held out of the training set (at most a tenth of it)")
        p.add_argument("--eval-every", type=_positive_int, default=d.eval_every, help="validation NELBO every N iterations")
        p.add_argument("--checkpoint-every", type=_positive_int, default=d.checkpoint_every)
        p.add_argument("--iwae-k", type=_positive_int, nargs="+", default=d.iwae_k,
                       help="importance-weighted bounds computed after training (more with `vaelab eval`)")
        p.add_argument("--eval-repeats", type=_positive_int, default=d.eval_repeats,
                       help="Monte Carlo passes over the test set for NELBO/KL/Rec")
        _add_runtime_args(p)
        group = p.add_argument_group(f"{name} options")
        for opt, (typ, default, help_) in options.items():
            group.add_argument("--" + opt.replace("_", "-"), dest=f"opt_{opt}", type=_positive_float if opt == "beta" else typ,
                               default=default, metavar=opt.upper(), help=help_)

    ev = sub.add_parser("eval", help="evaluate a trained run on its full test set (adds IWAE bounds)")
    ev.add_argument("run", type=Path, help="run folder")
    ev.add_argument("--iwae-k", type=_positive_int, nargs="+", default=[5000], help="importance samples per image")
    ev.add_argument("--eval-repeats", type=_positive_int, default=None,
                    help="also recompute NELBO/KL/Rec with this many Monte Carlo passes")
    _add_runtime_args(ev)

    sa = sub.add_parser("sample", help="draw images from p(x) of a trained run as one grid PNG")
    sa.add_argument("run", type=Path, help="run folder")
    sa.add_argument("--rows", type=_positive_int, default=10)
    sa.add_argument("--cols", type=_positive_int, default=20)
    sa.add_argument("--seed", type=int, default=0, help="random seed of the draw")
    sa.add_argument("--run-seed", type=int, help="which training seed's model (default: the first)")
    sa.add_argument("--out", type=Path, help="PNG path (default: RUN/samples-ROWSxCOLS-seedS.png)")
    sa.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    sc = sub.add_parser("score", help="anomaly scores of a data set's test images under a trained run (and ROC AUC)")
    sc.add_argument("run", type=Path, help="run folder")
    sc.add_argument("--dataset", help="data set whose test split is scored (default: the run's)")
    sc.add_argument("--normal-classes", type=int, nargs="+",
                    help="classes that are normal; the others are anomalies (default: the run's --classes)")
    sc.add_argument("--run-seed", type=int, help="which training seed's model (default: the first)")
    sc.add_argument("--out", type=Path, help="output path prefix for .csv and .json (default: RUN/scores-DATASET-seedS)")
    sc.add_argument("--eval-repeats", type=_positive_int, default=10, help="Monte Carlo passes for VAE NELBO scores")
    _add_runtime_args(sc)

    ds = sub.add_parser("datasets", help="list data sets and where they were found")
    ds.add_argument("--data-dir", help="also look in this folder first")
    return parser


def cmd_train(args) -> int:
    from .train import TrainConfig, train_run

    options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}
    cfg = TrainConfig(model=args.model, dataset=args.dataset, data_dir=args.data_dir, out=args.out, seeds=args.seeds,
                      iters=args.iters, batch_size=args.batch_size, lr=args.lr, binarize=args.binarize,
                      val_size=args.val_size, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                      iwae_k=args.iwae_k, eval_repeats=args.eval_repeats, device=args.device, threads=args.threads,
                      progress=args.progress, model_options=options, optimizer=args.optimizer,
                      train_classes=args.train_classes, fresh_batches=args.fresh_batches)
    run_dir = train_run(cfg)
    print(f"run folder: {run_dir}\nreport: {run_dir / 'report.md'}")
    return 0


def cmd_eval(args) -> int:
    from .saved import evaluate_run

    path = evaluate_run(args.run, iwae_k=args.iwae_k, repeats=args.eval_repeats, data_dir=args.data_dir,
                        device=args.device, threads=args.threads, progress=args.progress)
    print(f"metrics: {args.run / 'metrics.json'}\nreport: {path}")
    return 0


def cmd_sample(args) -> int:
    from .saved import sample_run

    path = sample_run(args.run, rows=args.rows, cols=args.cols, seed=args.seed, run_seed=args.run_seed,
                      out=args.out, device=args.device)
    print(path)
    return 0


def cmd_score(args) -> int:
    from .saved import score_run

    s = score_run(args.run, dataset=args.dataset, normal_classes=args.normal_classes, run_seed=args.run_seed,
                  out=args.out, data_dir=args.data_dir, device=args.device, threads=args.threads,
                  repeats=args.eval_repeats)
    auc = f"ROC AUC {s['auc']:.4f} (normal classes {s['normal_classes']})" if "auc" in s else "no labels given: no AUC"
    print(f"{s['n']} scores ({s['score']}) on {s['dataset']}: {auc}\nscores: {s['csv']}")
    return 0


def cmd_datasets(args) -> int:
    from .data import dataset_status

    rows = dataset_status(args.data_dir)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        where = r["where"] if r["found"] else "not found (downloaded on first use when online)"
        print(f"{r['name']:<{width}}  {'yes' if r['found'] else 'no ':<3}  {where}\n{'':<{width}}       {r['description']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "score": cmd_score, "datasets": cmd_datasets}
    try:
        return commands[args.command](args)
    except VaelabError as e:
        print(f"vaelab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaelab: interrupted; files already written are complete (checkpoints are written atomically)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
