"""The `vaelab` argument parser: argument types that give one-line errors, and one sub-parser per command."""
from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
from pathlib import Path

from .config import MAX_SEED, OPTIMIZERS, PRECISIONS, TrainConfig, kl_annealing_models
from .data import BINARIZE_MODES
from .models import MODELS, declared_options
from .models.options import Option


# Python arguments whose flag is not the argument's name with dashes (progress=False is --no-progress)
_FLAGS = {"train_classes": "--classes", "label": "--class", "repeats": "--eval-repeats"}


def flag(name: str, value: str | None = None) -> str:
    """The flag that sets Python argument `name` (`--batch-size`), with `value` where a message gives one
    (`--device cuda`): the command line's one map from argument to flag (VaelabError.for_cli applies it)."""
    if name == "progress":
        return "--no-progress"
    text = _FLAGS.get(name, "--" + name.replace("_", "-"))
    return text if value is None else f"{text} {value}"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option gets one line (not the whole usage) naming the fix."""

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)   # for error(): which command was asked for
        return super().parse_known_args(args, namespace)

    def error(self, message):
        help_of = self._command() or self.prog
        if message.startswith("unrecognized arguments: "):   # a misspelt flag, or another command's
            owners = self._flag_owners()
            mine = [f[2:] for f, progs in owners.items() if help_of in progs]
            hints = []
            for a in message.split(": ", 1)[1].split():
                flag = a.split("=")[0]
                name = flag[2:].replace("_", "-")   # flags compared without their dashes
                if (not a.startswith("--") or flag[2:] in mine   # the command's own flag, after a stray --
                        or any(h.startswith((f"{flag}:", f"{flag} ")) for h in hints)):
                    continue
                near = difflib.get_close_matches(name, mine, n=1, cutoff=0.85 if flag in owners else 0.6)
                if near:   # a near miss of the asked command's own flag (sample --seeds: --seed)
                    hints.append(f"{flag}: did you mean --{near[0]}?")
                elif flag in owners and [c for c in owners[flag] if c != help_of]:
                    hints.append(f"{flag} is an option of {_commands(owners[flag], help_of)}")
                else:
                    near = difflib.get_close_matches(name, [f[2:] for f in owners], n=1)
                    if near:   # another command's flag
                        hints.append(f"{flag}: did you mean --{near[0]} (an option of "
                                     f"{_commands(owners['--' + near[0]], help_of)})?")
            message += "".join(f"; {h}" for h in hints)
        bad_model = re.match(r"argument MODEL: invalid choice: '(.*?)' \(choose from (.*)\)$", message)
        if bad_model:   # a misspelt model, or an option where the model belongs
            close = difflib.get_close_matches(bad_model[1], re.findall(r"'([^']*)'", bad_model[2]), n=1)
            message += (f"; did you mean {close[0]}?" if close else
                        "; the model comes right after `train`, before its options: `vaelab train vae --iters 5000`")
        self.exit(2, f"{self.prog}: error: {message} (see `{help_of} --help`)\n")

    def _command(self) -> str | None:
        """The prog of the deepest sub-command named on the command line ("vaelab train vae"), if any."""
        parser, found = self, None
        for word in getattr(self, "_argv", []):
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if not subs or word not in subs[0].choices:
                continue   # an option, its value (train --threads 2 vae), or a positional such as RUN
            parser = subs[0].choices[word]
            found = parser.prog
        return found

    def _flag_owners(self) -> dict[str, list[str]]:
        """Every --flag of this parser and its sub-commands, with the progs ("vaelab train gmvae") that take it."""
        owners: dict[str, list[str]] = {}
        for action in self._actions:
            for f in action.option_strings:
                if f.startswith("--"):
                    owners.setdefault(f, []).append(self.prog)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, Parser):
                        for f, progs in sub._flag_owners().items():
                            owners.setdefault(f, []).extend(progs)
        return owners


def _commands(progs: list[str], asked: str) -> str:
    """The commands that take a flag, as "`vaelab eval`, `vaelab train gmvae`"; more than three models of
    train as "`vaelab train` for vae, gmvae, vamp, hvae, cvae" (or "for every model")."""
    is_model = lambda p: len(p.split()) == 3 and p.split()[1] == "train"  # noqa: E731
    models = [p.split()[2] for p in progs if is_model(p) and p != asked]
    group = ("every model" if len(models) == len(MODELS) else ", ".join(models)) if len(models) > 3 else None
    out = []
    for prog in progs:
        name = f"`vaelab train` for {group}" if group and is_model(prog) else f"`{prog}`"
        if prog != asked and name not in out and not (group and prog == "vaelab train"):
            out.append(name)
    return ", ".join(out)


def _checked(convert, ok, what: str):
    """An argparse type: convert the text, then check the value; one-line message either way."""

    def parse(s: str):
        try:
            v = convert(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {s}")
        return v
    return parse


_positive_int = _checked(int, lambda v: v > 0, "a positive integer")
_nonneg_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _checked(float, lambda v: 0 < v < math.inf, "a positive finite number")
_nonneg_float = _checked(float, lambda v: 0 <= v < math.inf, "a number >= 0")
_seed = _checked(int, lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")


def _existing_dir(s: str) -> str:
    if not Path(s).is_dir():
        raise argparse.ArgumentTypeError(f"{s}: no such folder; give the folder that holds DATASET/ subfolders, or leave it out")
    return s


def _option_type(option: Option):
    """argparse type of a model option: the text converted to its declared type, then checked by its rule,
    the one TrainConfig.validate() applies to Python values too (models.options)."""
    return option.type if option.rule is None else _checked(option.type, *option.rule)


class DefaultsFormatter(argparse.HelpFormatter):
    """Help lines end with the option's default, unless it has none, is a flag, or the help says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("(default" in text or not action.option_strings
                or any(action.default is v for v in (None, True, False, argparse.SUPPRESS))):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def _add_device_threads(p: argparse.ArgumentParser, prefix: str = "", device_default="auto") -> None:
    p.add_argument("--device", dest=prefix + "device", default=device_default, choices=["auto", "cpu", "cuda"],
                   help="where to compute (default: auto)")
    p.add_argument("--threads", dest=prefix + "threads", metavar="THREADS", type=_positive_int, help="CPU threads for PyTorch (default: all cores; training "
                   "times 1 and all of them and keeps the faster, again when its steps slow down)")


def _add_runtime_args(p: argparse.ArgumentParser, prefix: str = "", device_default="auto") -> None:
    p.add_argument("--data-dir", dest=prefix + "data_dir", metavar="DATA_DIR", type=_existing_dir, help="folder holding data sets as DIR/mnist/, DIR/fashion-mnist/ "
                   "(default: $VAELAB_DATA, then the user cache, then /usr/share/datasets)")
    _add_device_threads(p, prefix, device_default)
    p.add_argument("--no-progress", dest=prefix + "progress", action="store_false",
                   **({"default": None} if prefix else {}), help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The whole `vaelab` argument parser: one sub-command per job."""
    parser = Parser(prog="vaelab", description="Autoencoders and variational autoencoders.")
    parser.add_argument("--version", action="version", version=f"vaelab {__import__('vaelab').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    _add_train(sub)
    _add_saved_run_commands(sub)
    _add_code_commands(sub)
    _add_other_commands(sub)
    return parser


def _add_train(sub) -> None:
    """`vaelab train MODEL [options]` and `vaelab train --resume RUN`."""
    train = sub.add_parser("train", help="train a model (one run folder, one or more seeds), or resume one",
                           usage="vaelab train MODEL [options]  |  vaelab train --resume RUN [runtime options]")
    train.add_argument("--resume", dest="top_resume", metavar="RUN", type=Path,
                       help="continue an interrupted run folder from its last checkpoints, with its saved "
                            "configuration (only the options below may change)")
    top = train.add_argument_group("runtime options (with --resume)")
    _add_runtime_args(top, prefix="top_", device_default=None)
    top.add_argument("--time-budget", dest="top_time_budget", metavar="DURATION",
                     help="a new time budget per seed (total training time): a longer one continues the seeds "
                          "the old budget stopped, e.g. `vaelab train --resume RUN --time-budget 2h`")
    models = train.add_subparsers(dest="model", required=False, metavar="MODEL", parser_class=Parser, prog="vaelab train")
    for name, (cls, _) in MODELS.items():
        _add_model_parser(models, name, cls)


def _add_model_parser(models, name: str, cls) -> None:
    """`vaelab train NAME`: the training options (TrainConfig's fields, in three groups) and the model's own."""
    d = TrainConfig()
    p = models.add_parser(name, help=(cls.__doc__ or name).strip().splitlines()[0],
                          formatter_class=DefaultsFormatter)
    _add_data_args(p.add_argument_group("data"), d)
    _add_optimisation_args(p.add_argument_group("optimisation"), d, cls)
    _add_bookkeeping_args(p.add_argument_group("run folder, logging and evaluation"), d)
    _add_runtime_args(p)
    group = p.add_argument_group(f"{name} options")
    for opt in declared_options(name).values():
        group.add_argument("--" + opt.name.replace("_", "-"), dest=f"opt_{opt.name}", type=_option_type(opt),
                           default=opt.default, metavar=opt.name.upper(), help=opt.help)


def _add_data_args(g, d) -> None:
    """Which data, and how they are prepared."""
    g.add_argument("--dataset", default=d.dataset, help="data set name (see `vaelab datasets`), or your own data: a "
                   "folder of images (one subfolder per class) or an .npz / .npy file")
    g.add_argument("--resize", type=_positive_int, help="resize images to N x N first (e.g. 32 for MNIST in 32x32; "
                   "a folder of images of several sizes needs it)")
    g.add_argument("--binarize", choices=("auto", *BINARIZE_MODES), default=d.binarize,
                   help="training images: fresh Bernoulli draw per batch, one fixed draw, or grey levels; "
                        "auto: none for continuous data and autoencoders, dynamic otherwise")
    g.add_argument("--classes", type=_nonneg_int, nargs="+", dest="train_classes",
                   help="train only on these classes (e.g. one-class anomaly detection); the test set stays whole")
    g.add_argument("--fresh-batches", action="store_true",
                   help="generated data (toy sets, dsprites): draw fresh examples for every batch instead of the "
                        "fixed training sample")
    g.add_argument("--val-size", type=_nonneg_int, default=d.val_size,
                   help="validation images held out of the training set (at most a tenth of it)")


def _add_optimisation_args(g, d, cls) -> None:
    """Seeds, length, optimizer, schedules and precision of the training."""
    g.add_argument("--seeds", type=_seed, nargs="+", default=d.seeds, help="one training run per seed")
    g.add_argument("--seed", type=_seed, dest="seeds", nargs=1, help="a single seed (same as --seeds S)")
    g.add_argument("--iters", type=_positive_int, default=d.iters,
                   help=f"training iterations (default: the model's, {cls.TRAINING.iters})")
    g.add_argument("--epochs", type=_positive_int, help="train for N passes over the training set instead of --iters "
                   "(validation, log and checkpoint once per epoch)")
    g.add_argument("--patience", type=_positive_int, help="with --epochs: stop after P epochs without a better "
                   "validation NELBO and keep the best epoch's weights (the course practice uses 3)")
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help="images per training step")
    g.add_argument("--lr", type=_positive_float, default=d.lr, help="learning rate")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                   help="auto: AdamW for autoencoders, Adam for VAEs")
    g.add_argument("--warmup", type=_nonneg_float, default=d.warmup, metavar="EPOCHS",
                   help=f"KL warm-up: the KL weight rises linearly from 0 to 1 over this many epochs "
                        f"({', '.join(kl_annealing_models())}; 0: none)")
    g.add_argument("--lr-schedule", default=d.lr_schedule, metavar="SCHEDULE",
                   help="constant, step:EPOCHS:FACTOR, exp:FACTOR (per epoch) or iwae (Burda et al.: 10^(-i/7) for 3^i epochs)")
    g.add_argument("--adam-eps", type=_positive_float, default=d.adam_eps, help="Adam's epsilon")
    g.add_argument("--time-budget", metavar="DURATION", help="stop each seed's training after this much training time "
                   "(90s, 15m, 1.5h; a bare number is seconds), then evaluate as usual; `--resume RUN --time-budget LONGER` continues it")
    g.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="bf16: the networks under bfloat16 autocast (log-densities stay float32); "
                        "for GPUs with bfloat16 units")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (a one-off compile of tens of seconds; fewer, fused "
                        "kernels; on a GPU --cuda-graph does far more for the small default nets)")
    g.add_argument("--cuda-graph", action="store_true",
                   help="GPU: capture the training step (forward, backward, Adam) as one CUDA graph and replay it: "
                        "one graph launch and a few small kernels per step (about 6x the eager step of the "
                        "default VAE on an H200)")


def _add_bookkeeping_args(g, d) -> None:
    """Where the run goes, and how often it logs, validates, checkpoints and evaluates."""
    g.add_argument("--out", help="run folder to create (default: runs/MODEL-DATASET-TIMESTAMP)")
    g.add_argument("--resume", metavar="RUN", type=Path,
                   help="continue this interrupted run folder (same as `vaelab train --resume RUN`)")
    g.add_argument("--eval-every", type=_positive_int, default=d.eval_every, help="validation NELBO every N iterations")
    g.add_argument("--log-every", type=_positive_int, default=d.log_every,
                   help="one point of the training curves (history.json) per N iterations, the mean over them")
    g.add_argument("--checkpoint-every", type=_positive_int, default=d.checkpoint_every,
                   help="write seed-S/checkpoint.pt every N iterations (and at the end)")
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                   help="no TensorBoard event files (written beside history.json when the tensorboard package is "
                        "installed: `tensorboard --logdir runs/` shows the curves live)")
    g.add_argument("--iwae-k", type=_positive_int, nargs="+", default=d.iwae_k,
                   help="importance-weighted bounds computed after training (more with `vaelab eval`)")
    g.add_argument("--eval-repeats", type=_positive_int, default=d.eval_repeats,
                   help="Monte Carlo passes over the test set for NELBO/KL/Rec")


def _add_saved_run_commands(sub) -> None:
    """eval, sample, plot, score: commands on a saved run folder."""
    ev = sub.add_parser("eval", help="evaluate a trained run on its full test set (adds IWAE bounds)",
                        formatter_class=DefaultsFormatter)
    ev.add_argument("run", type=Path, help="run folder")
    ev.add_argument("--iwae-k", type=_positive_int, nargs="+",
                    help="importance samples per image: the IWAE-k bounds to compute (default: 5000 for the models "
                         "that have the bound; 5000 on the whole MNIST test set takes minutes on a CPU; e.g. --iwae-k "
                         "100 for a quick look)")
    ev.add_argument("--eval-repeats", type=_positive_int, default=None,
                    help="also recompute NELBO/KL/Rec with this many Monte Carlo passes")
    ev.add_argument("--run-seeds", type=_seed, nargs="+", help="only these training seeds (default: all); the "
                    "mean ± SE of a metric appears once every seed has it, so a long evaluation can go seed by seed")
    ev.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch.compile the IWAE passes: a one-off compile of some seconds per k, then 10-20%% less "
                    "time per pass on a CPU (docs/runtime.md; the same draws, so the same bounds). Default: compiled on "
                    "a CPU from 10 million sample rows (test images x k) on, e.g. --iwae-k 1000 and up on MNIST")
    ev.add_argument("--codes", action="store_true", help="also the test accuracies of the model's codes: a 5-nearest-"
                    "neighbour vote and a linear probe, each fitted on the training codes (labelled data; alone, "
                    "no IWAE bound is computed unless --iwae-k is given)")
    ev.add_argument("--disentanglement", action="store_true", help="also MIG, SAP and DCI of the test codes against "
                    "the data set's ground-truth factors (the dsprites sets; alone, no IWAE bound unless --iwae-k)")
    _add_runtime_args(ev)

    sa = sub.add_parser("sample", help="draw images from p(x) of a trained run as one grid PNG",
                        formatter_class=DefaultsFormatter)
    sa.add_argument("run", type=Path, help="run folder")
    sa.add_argument("--rows", type=_positive_int, default=10, help="rows of the grid")
    sa.add_argument("--cols", type=_positive_int, default=20, help="images per row")
    sa.add_argument("--seed", type=_seed, default=0, help="random seed of the draw")
    sa.add_argument("--run-seed", type=_seed, help="which training seed's model (default: the first)")
    sa.add_argument("--out", type=Path, help="PNG path (default: RUN/samples-ROWSxCOLS-seedS.png)")
    sa.add_argument("--class", dest="label", type=_nonneg_int, help="conditional models: draw every image of this class")
    _add_device_threads(sa)

    pl = sub.add_parser("plot", help="make a figure of a saved run again")
    pl.add_argument("run", type=Path, help="run folder")
    pl.add_argument("figure", choices=["manifold", "scatter", "recon", "interpolate", "samples", "curves"])
    pl.add_argument("--tsne", action="store_true", help="scatter: add a t-SNE panel (2,000 test images; about a minute)")
    pl.add_argument("--run-seed", type=_seed, help="which training seed's model (default: the first)")
    pl.add_argument("--data-dir", type=_existing_dir, help="where the run's data set is, if not where it was found at training time")
    _add_device_threads(pl)

    sc = sub.add_parser("score", help="anomaly scores of a data set's test images under a trained run (and ROC AUC)")
    sc.add_argument("run", type=Path, help="run folder")
    sc.add_argument("--dataset", help="data set whose test split is scored (default: the run's)")
    sc.add_argument("--normal-classes", type=_nonneg_int, nargs="+",
                    help="classes that are normal; the others are anomalies (default: the run's --classes, on its own data set)")
    sc.add_argument("--run-seed", type=_seed, help="which training seed's model (default: the first)")
    sc.add_argument("--out", type=Path, help="output path prefix for .csv and .json (default: RUN/scores-DATASET-seedS, "
                    "with -normalA-B... added for --normal-classes)")
    sc.add_argument("--eval-repeats", type=_positive_int, default=10, help="Monte Carlo passes for VAE NELBO scores")
    _add_runtime_args(sc)



def _add_code_commands(sub) -> None:
    """encode, neighbours: a run's codes, for what comes next."""
    en = sub.add_parser("encode", help="write the codes of a run's data (train and test, with labels) to an .npz file",
                        formatter_class=DefaultsFormatter)
    en.add_argument("run", type=Path, help="run folder")
    en.add_argument("--dataset", help="another data set of the run's shape (a name, a folder of images or an .npz "
                    "file; default: the run's own)")
    en.add_argument("--out", type=Path, help="the .npz file (default: RUN/codes-DATASET-seedS.npz)")
    en.add_argument("--run-seed", type=_seed, help="which training seed's model (default: the first)")
    en.add_argument("--data-dir", type=_existing_dir, help="where the data set is, if not where it was found at training time")
    _add_device_threads(en)

    nb = sub.add_parser("neighbours", help="retrieval: the training images whose codes are nearest to each query's",
                        formatter_class=DefaultsFormatter)
    nb.add_argument("run", type=Path, help="run folder")
    nb.add_argument("--query", nargs="+", metavar="IMAGE", help="image files to look up (default: the first 8 test "
                    "images); converted to the run's channels and size")
    nb.add_argument("--k", type=_positive_int, default=8, help="neighbours per query")
    nb.add_argument("--out", type=Path, help="PNG path (default: RUN/neighbours-seedS.png)")
    nb.add_argument("--run-seed", type=_seed, help="which training seed's model (default: the first)")
    _add_device_threads(nb)


def _add_other_commands(sub) -> None:
    """reproduce, explore, datasets."""
    rp = sub.add_parser("reproduce", help="run a named course experiment end to end and write its report "
                        "(`vaelab reproduce --list`)", usage="vaelab reproduce NAME [--quick] [options]  |  vaelab reproduce --list")
    rp.add_argument("name", nargs="?", metavar="NAME", help="recipe name (see --list)")
    rp.add_argument("--list", action="store_true", help="list the recipes, what each does and the data it needs")
    rp.add_argument("--quick", action="store_true", help="the quick form: about a minute on one CPU thread, tiny "
                    "iteration counts; its numbers are not comparable to the references")
    rp.add_argument("--data-dir", type=_existing_dir, help="folder holding data sets as DIR/mnist/, DIR/fashion-mnist/")
    rp.add_argument("--out", type=Path, help="folder to create for the runs and the report "
                    "(default: runs/reproduce-NAME[-quick]-TIMESTAMP)")
    rp.add_argument("--resume", action="store_true", help="continue the recipe that was interrupted in --out: its "
                    "finished runs are kept, an interrupted run goes on from its last checkpoints")
    rp.add_argument("--threads", type=_positive_int, help="CPU threads for PyTorch (default: all cores)")
    rp.add_argument("--no-progress", dest="progress", action="store_false", help="no progress output")

    ex = sub.add_parser("explore", help="interactive latent-space explorer of a trained image run in the browser")
    ex.add_argument("run", type=Path, help="run folder")
    ex.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only; 0.0.0.0 "
                    "makes the explorer reachable from other machines)")
    ex.add_argument("--port", type=_checked(int, lambda v: 0 <= v <= 65535, "a port from 0 to 65535"), default=8765,
                    help="port (0: any free port)")
    ex.add_argument("--no-browser", dest="browser", action="store_false", help="do not open the page in a browser")
    ex.add_argument("--run-seed", type=_seed, help="which training seed's model (default: the first)")
    ex.add_argument("--data-dir", type=_existing_dir, help="where the run's data set is, if not where it was found at training time")
    ex.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where to decode (default: cpu)")
    ex.add_argument("--threads", type=_positive_int, default=1, help="CPU threads for PyTorch")
    ex.add_argument("--verbose", action="store_true", help="log every request")

    ds = sub.add_parser("datasets", help="list data sets and where they were found")
    ds.add_argument("--data-dir", type=_existing_dir, help="also look in this folder first")
