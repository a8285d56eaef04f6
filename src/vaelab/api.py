"""The Python entry points: train a model, open a run, list options and data sets.

    import vaelab
    run = vaelab.train("vae", dataset="mnist-5k", seeds=[0, 1, 2], beta=4.0, iters=2000)
    run.summary()
    vaelab.options("gmvae")

The command line (`vaelab train ...`) builds the same TrainConfig (configure.build_config) and trains it the same way.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

import torch

from .config import EXTENDABLE, RUNTIME_OPTIONS
from .configure import build_config, resume_changes
from .data import dataset_status
from .errors import VaelabError
from .models import MODELS, Model, declared_options
from .runs.train import resume_run, train_run
from .runs.run import Run, load_run as _load
from .runs.folder import is_run_dir


def train(model: str | Model | None = None, dataset: str | None = None, *, seeds=None, out=None,
          overwrite: bool = False, resume: bool = False, **options) -> Run:
    """Train a model on a data set for every seed, evaluate it on the full test set, write a run folder.

    Args:
        model: a registered model name (`vaelab.options()` lists them; default "vae") or a model
            instance, e.g. `vaelab.VAE(encoder=MyEncoder(), decoder=MyDecoder(), z_dim=16)`; every
            seed starts from a fresh initialisation of its networks.
        dataset: a data set name (`vaelab.datasets()`; the default `mnist-5k` is embedded and works offline),
            or your own data: a folder of images (one subfolder per class) or an .npz / .npy file by path; an
            array or tensor of shape (N, D), (N, H, W), (N, C, H, W) or (N, H, W, C) (uint8 0..255 or floats
            in [0, 1]); (x, y) with labels; {"train": x, "test": xt, "train_labels": y, "test_labels": yt};
            or a torch.utils.data.Dataset of images (and labels). Without a test set, a fifth of the data is
            held out for testing (split seed 0). See docs/data.md.
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
    threads = torch.get_num_threads()   # threads= applies to this call only, not to the rest of the session
    try:
        if resume:
            return _resume(model, dataset, seeds, out, options)
        name, given = _named(dataset)
        cfg, instance = build_config(model or "vae", name or "mnist-5k", [0] if seeds is None else seeds, out,
                                     options)
        if out is not None and not overwrite and is_run_dir(Path(out)):
            raise VaelabError(f"out={str(out)!r} already holds a run; pass overwrite=True to replace it, "
                              f"resume=True to continue it, or another out")
        return Run(train_run(cfg, model=instance, overwrite=overwrite, data=given), model=instance, data=given)
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
    name, given = _named(dataset)
    run = Run(out, data=given)
    changed = resume_changes(run.config, model, None if given is not None else name, seeds, options)
    if changed:
        raise VaelabError(f"resume=True keeps the run's saved configuration; {', '.join(k for k, _, _ in changed)} "
                          f"{'differs' if len(changed) == 1 else 'differ'} from it (saved: "
                          f"{', '.join(f'{k}={old!r}' for k, old, _ in changed)}); "
                          f"use overwrite=True to start again with the new values")
    saved = run.config
    extend = {k: options[k] for k in EXTENDABLE if options.get(k) is not None and options[k] != getattr(saved, k)}
    if run.complete and (run.path / "report.md").exists() and not extend:
        return run   # nothing left to do: the same cell run again after training finished
    return Run(resume_run(out, data=given, **{k: v for k, v in options.items() if k in RUNTIME_OPTIONS}, **extend),
               data=given)


def _named(dataset) -> tuple[str | None, object]:
    """(the name TrainConfig records, your own data in memory or None) of train()'s dataset argument: a
    name or path is itself; an array, tensor, (x, y), dict or torch Dataset is known as "array" or
    "torch-dataset" and handed to the run as it is."""
    if dataset is None or isinstance(dataset, str):
        return dataset, None
    if isinstance(dataset, os.PathLike):
        return str(dataset), None
    return ("torch-dataset" if isinstance(dataset, torch.utils.data.Dataset) else "array"), dataset


def load_run(path, model: Model | None = None, data=None) -> Run:
    """Open a run folder written by `vaelab.train` or `vaelab train` (see `vaelab.Run`).

    model: for a run trained on your own networks that cannot be imported again by name, the model
    built the same way; its weights are replaced by the run's.
    data: for a run trained on your own data given in memory, the same data again (checked against the
    SHA-256 the run recorded)."""
    return _load(path, model, data)


def options(model: str | None = None) -> "OptionsTable":
    """The options of a model (name, default, meaning), or with no argument the models themselves."""
    if model is None:
        return OptionsTable([(n, "", (cls.__doc__ or n).strip().splitlines()[0]) for n, (cls, _) in MODELS.items()],
                            "models (vaelab.options(name) shows a model's options)", ("model", "", "what it is"))
    if model not in MODELS:
        raise VaelabError(f"model={model!r}: unknown; choose one of {', '.join(MODELS)}")
    rows = [(o.name, repr(o.default), o.help) for o in declared_options(model).values()]
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
