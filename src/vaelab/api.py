"""The Python entry points: train a model, open a run, list options and data sets.

    import vaelab
    run = vaelab.train("vae", dataset="mnist-5k", seeds=[0, 1, 2], beta=4.0, iters=2000)
    run.summary()
    vaelab.options("gmvae")

The command line (`vaelab train ...`) builds the same TrainConfig and calls the same pipeline.
"""
from __future__ import annotations

import dataclasses
import difflib
import html
import os
import re
from pathlib import Path

import torch

from .config import EXTENDABLE, RUNTIME_OPTIONS, TrainConfig
from .data import dataset_status
from .errors import VaelabError
from .models import MODELS, NETWORK_OPTIONS, Model, with_defaults
from .runs.train import resume_run, train_run
from .runs.run import Run, load_run as _load
from .runs.folder import is_run_dir

_TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "model_options")]
# CLI flags whose Python argument has another name
_FLAG_NAMES = {"classes": "train_classes", "seed": "seeds", "no-progress": "progress=False"}


def _argument(flag: str) -> str:
    """The Python argument a CLI flag (without its dashes) stands for."""
    return _FLAG_NAMES.get(flag, flag.replace("-", "_"))


def python_message(message: str) -> str:
    """A CLI-worded error message in Python's words: each --flag replaced by the Python argument it stands
    for; a flag aside such as "data_dir=<dir> (--data-dir <dir>)" dropped where the text just before it on
    its line already says it (it would read "data_dir=<dir> (data_dir <dir>)"), else written as Python,
    "(--device cuda)" as "(device='cuda')"."""
    def aside(m: re.Match) -> str:
        flags, rest = m.group(1), m.group(2) or ""
        before = message[:m.start()].rsplit("\n", 1)[-1][-80:]   # this line's text just before the aside
        named = lambda word: re.search(rf"(?<![\w-]){re.escape(word.split('=')[0])}(?![\w-])", before)  # noqa: E731
        one = re.fullmatch(r"--([a-z][a-z0-9-]*) (\S+)", flags.strip())   # "(--device cuda)"
        if one and not rest:   # kept as device='cuda' unless the text before says both name and value
            arg, value = _argument(one.group(1)), one.group(2)
            if named(arg) and named(value):
                return ""
            number = re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", value)
            return f" ({arg}={value if number else repr(value)})"
        if not all(named(_argument(f)) for f in re.findall(r"--([a-z][a-z0-9-]*)", flags)):
            return m.group(0)
        return f" ({rest.strip()})" if rest.strip() else ""

    message = re.sub(r" \((--[a-z][^();]*)(?:;([^()]*))?\)", aside, message)
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: _argument(m.group(1)), message)


def train(model: str | Model | None = None, dataset: str | None = None, *, seeds=None, out=None,
          overwrite: bool = False, resume: bool = False, **options) -> Run:
    """Train a model on a data set for every seed, evaluate it on the full test set, write a run folder.

    Args:
        model: a registered model name (`vaelab.options()` lists them; default "vae") or a model
            instance, e.g. `vaelab.VAE(encoder=MyEncoder(), decoder=MyDecoder(), z_dim=16)`; every
            seed starts from a fresh initialisation of its networks.
        dataset: a data set name (`vaelab.datasets()`); the default `mnist-5k` is embedded and works offline.
        seeds: one training run per seed (default [0]).
        out: the run folder (default: runs/MODEL-DATASET-TIMESTAMP, new on every call).
        overwrite: replace the vaelab run in `out`: only the files vaelab wrote there are removed, after the
            options and data are checked and while no other process is writing the run; a folder that
            is not a vaelab run, or also holds files of yours, is refused and left as it is.
        resume: continue the run in `out` where it stopped (or start it, if `out` holds none yet); the
            arguments given must agree with its saved configuration, so the same cell can run again, and
            a complete run is returned as it is. A longer `time_budget` extends it: the seeds the old
            budget stopped train on from their last checkpoint and are evaluated again.
        **options: training options (the fields of `vaelab.TrainConfig`: iters, epochs, batch_size,
            lr, ...) and, for a model name, the model's options (`vaelab.options(model)`: beta, z_dim, ...),
            one by one or as one dict, model_options={"beta": 4.0}.

    Returns:
        the `Run`: `run.summary()`, `run.model()`, `run.test_data()`, ...
    """
    if overwrite and resume:
        raise VaelabError("overwrite=True and resume=True contradict each other: choose one")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise VaelabError(f"out must be a folder path (a str or pathlib.Path), got {type(out).__name__}")
    if options.get("data_dir") is not None and not Path(options["data_dir"]).expanduser().is_dir():
        raise VaelabError(f"data_dir={str(options['data_dir'])!r}: no such folder; give the folder that holds DATASET/ "
                          f"subfolders, or leave it out")
    threads = torch.get_num_threads()   # threads= applies to this call only, not to the rest of the session
    try:
        if resume:
            return _resume(model, dataset, seeds, out, options)
        if dataset is None and options.get("data_dir") is not None:
            raise VaelabError(f"data_dir={str(options['data_dir'])!r} is given but no dataset: the default, mnist-5k, "
                              f"is embedded and reads no files; pass dataset='mnist' (or another data set in that "
                              f"folder: vaelab.datasets(data_dir))")
        cfg, instance = _config(model or "vae", dataset or "mnist-5k", [0] if seeds is None else seeds, out, options)
        if out is not None and not overwrite and is_run_dir(Path(out)):
            raise VaelabError(f"out={str(out)!r} already holds a run; pass overwrite=True to replace it, "
                              f"resume=True to continue it, or another out")
        return Run(train_run(cfg, model=instance, overwrite=overwrite), model=instance)
    except VaelabError as e:
        raise VaelabError(python_message(str(e))) from None
    finally:
        torch.set_num_threads(threads)


def _resume(model, dataset, seeds, out, options) -> Run:
    """resume=True: continue the run in `out`; the arguments given must agree with its saved configuration
    (so the same cell can be run again), except the runtime options, which may change, and the time
    budget, whose longer value extends the run."""
    if out is None:
        raise VaelabError("resume=True continues the run folder out: pass out='runs/...'")
    if not is_run_dir(Path(out)):   # nothing to continue yet: start it (a folder of other files is refused)
        return train(model, dataset, seeds=seeds, out=out, **options)
    run = Run(out)
    saved = dataclasses.asdict(run.config)
    given, _ = _config(model or saved["model"], dataset or saved["dataset"], saved["seeds"] if seeds is None else seeds,
                       out, {k: v for k, v in options.items() if k not in (*RUNTIME_OPTIONS, *EXTENDABLE)})
    now = dataclasses.asdict(given)
    now["model_options"] = {**saved["model_options"], **now["model_options"]}   # options left out keep their saved value
    asked = {"model", "dataset", "seeds", "model_options", *options}
    changed = [k for k in now if k in asked and k not in (*RUNTIME_OPTIONS, *EXTENDABLE, "out", "model_options")
               and now[k] != saved.get(k)]
    was = with_defaults(now["model"], saved["model_options"])   # model options by their own names
    changed += [k for k, v in now["model_options"].items() if v != was.get(k)]
    was.update({k: saved.get(k) for k in changed if k in saved})
    if changed:
        raise VaelabError(f"resume=True keeps the run's saved configuration; {', '.join(sorted(changed))} "
                          f"{'differs' if len(changed) == 1 else 'differ'} from it (saved: "
                          f"{', '.join(f'{k}={was.get(k)!r}' for k in sorted(changed))}); "
                          f"use overwrite=True to start again with the new values")
    extend = {k: options[k] for k in EXTENDABLE if options.get(k) is not None and options[k] != saved.get(k)}
    if run.complete and (run.path / "report.md").exists() and not extend:
        return run   # nothing left to do: the same cell run again after training finished
    return Run(resume_run(out, **{k: v for k, v in options.items() if k in RUNTIME_OPTIONS}, **extend))


def _config(model, dataset, seeds, out, options) -> tuple[TrainConfig, Model | None]:
    """(TrainConfig, model instance or None) from train()'s arguments, each name checked."""
    instance = None
    if isinstance(model, Model):
        instance, name, known = model, model.registry_name(), {}
    elif isinstance(model, str):
        if model not in MODELS:
            raise VaelabError(f"model={model!r}: unknown; choose one of {', '.join(MODELS)} or pass a model instance")
        name, known = model, MODELS[model][1]
    else:
        raise VaelabError(f"model must be a model name ({', '.join(MODELS)}) or a vaelab model instance, "
                          f"got {type(model).__name__}")
    if "model_options" in options:   # TrainConfig's field, as a dict: the same as the options one by one
        given = options.pop("model_options")
        if not isinstance(given, dict):
            raise VaelabError(f"model_options must be a dict of the model's options (e.g. {{'z_dim': 16}}), got "
                              f"{type(given).__name__}")
        if set(given) & set(_TRAIN_FIELDS):   # TrainConfig's own fields are not the model's
            raise VaelabError(f"model_options holds training option(s) {', '.join(sorted(set(given) & set(_TRAIN_FIELDS)))}"
                              f": give them as arguments of train(), e.g. iters=5000")
        if set(given) & set(options):
            raise VaelabError(f"{', '.join(sorted(set(given) & set(options)))} given both in model_options and as "
                              f"an argument: give each once")
        options = {**options, **given}
    options = {k: _plain(v) for k, v in options.items()}
    train_opts = {k: v for k, v in options.items() if k in _TRAIN_FIELDS}
    model_opts = {k: _sizes(v) if known.get(k, (None,))[0] is str else v for k, v in options.items() if k in known}
    unknown = sorted(set(options) - set(train_opts) - set(model_opts))
    if unknown:
        hints = []
        for k in unknown:
            owners = [n for n, (_, opts) in MODELS.items() if k in opts]   # another model's option
            close = difflib.get_close_matches(k, [*_TRAIN_FIELDS, *known], n=1)
            hints.append(f"{k!r}" + (f" (an option of {', '.join(owners)})" if owners else
                                     f" (did you mean {close[0]!r}?)" if close else ""))
        where = "the model instance's own arguments set its options" if instance is not None else \
            f"vaelab.options({name!r}) lists the model's"
        if instance is None and {"encoder", "decoder"} & set(unknown):   # networks go to the model's class
            cls = MODELS[name][0].__name__ if name in NETWORK_OPTIONS else "VAE"
            where += (f"; networks of your own go to the model class: vaelab.train(vaelab.{cls}(encoder=..., "
                      f"decoder=..., ...), ...) ({', '.join(MODELS[n][0].__name__ for n in NETWORK_OPTIONS)} take them)")
        raise VaelabError(f"unknown option(s) {', '.join(hints)} for train(): training options are the fields of "
                          f"vaelab.TrainConfig; {where}")
    if options.get("iters") is not None and options.get("epochs") is not None:
        raise VaelabError("give iters or epochs, not both (epochs: that many passes over the training set)")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    for field in ("iwae_k", "train_classes"):   # one value for a list of one, as seeds
        if isinstance(train_opts.get(field), int) and not isinstance(train_opts[field], bool):
            train_opts[field] = [train_opts[field]]
    cfg = TrainConfig(model=name, dataset=dataset, seeds=list(seeds), out=None if out is None else str(out),
                      model_options=instance.saved_options() if instance is not None else model_opts, **train_opts)
    return cfg, instance


def _plain(value):
    """numpy scalars (e.g. from np.arange in a sweep) as the Python numbers config.json can hold."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def _sizes(value):
    """Layer sizes given as an int or a list (hidden=300, [300, 300]) in the string form the command line
    and config.json use ("300,300"), so that the same run compares equal however it was asked for (the
    model's parse_hidden then checks them, with the message naming that string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ",".join(map(str, value))
    return value


def load_run(path, model: Model | None = None) -> Run:
    """Open a run folder written by `vaelab.train` or `vaelab train` (see `vaelab.Run`).

    model: for a run trained on your own networks that cannot be imported again by name, the model
    built the same way; its weights are replaced by the run's."""
    return _load(path, model)


def options(model: str | None = None) -> "OptionsTable":
    """The options of a model (name, default, meaning), or with no argument the models themselves."""
    if model is None:
        return OptionsTable([(n, "", (cls.__doc__ or n).strip().splitlines()[0]) for n, (cls, _) in MODELS.items()],
                            "models (vaelab.options(name) shows a model's options)", ("model", "", "what it is"))
    if model not in MODELS:
        raise VaelabError(f"model={model!r}: unknown; choose one of {', '.join(MODELS)}")
    rows = [(k, repr(default), text) for k, (_, default, text) in MODELS[model][1].items()]
    return OptionsTable(rows, f"{model} options (pass them to vaelab.train({model!r}, ...) or the model class)")


def datasets(data_dir=None) -> "OptionsTable":
    """The data sets vaelab knows, whether each was found, and where."""
    rows = [(r["name"], r["where"] if r["found"] else "not found", r["description"]) for r in dataset_status(data_dir)]
    return OptionsTable(rows, "data sets", ("name", "where", "what"))


class OptionsTable(list):
    """Rows of (name, value, text), shown as a table in a notebook and as aligned text elsewhere."""

    def __init__(self, rows, title: str = "", header=("option", "default", "meaning")):
        super().__init__(rows)
        self.title, self.header = title, header

    def __str__(self) -> str:
        w0 = max([len(r[0]) for r in self] + [len(self.header[0])])
        w1 = max([len(r[1]) for r in self] + [len(self.header[1])])
        lines = [self.title] if self.title else []
        return "\n".join(lines + [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in self])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in self)
        return f"<table><caption>{html.escape(self.title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
