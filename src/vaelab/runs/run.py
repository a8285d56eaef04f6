"""A saved run folder, opened from Python: its configuration, metrics, models, data and curves.

    run = vaelab.load_run("runs/vae-mnist-...")
    run.summary()            # mean ± SE of every metric over seeds (a table in a notebook)
    model = run.model()      # the weights the results come from (best epoch under early stopping)
    x, y = run.test_data()   # the test set exactly as evaluated

This is the one place that turns a folder into a model and its data: the CLI's eval / sample /
plot / score, the explorer, the recipes and the benchmarks all open runs through `Run`.
"""
from __future__ import annotations

import dataclasses
import html
import os
from pathlib import Path

import torch

from ..batches import DeviceData, prepare_data
from ..codes import encode_all
from ..config import TrainConfig, resolve_device
from ..errors import VaelabError
from ..models import Model, load_model
from ..storage import load_checkpoint, read_json


def config_of(run: Path) -> TrainConfig:
    """The TrainConfig saved in RUN/config.json (VaelabError if it is not one)."""
    path = Path(run) / "config.json"
    try:
        return TrainConfig(**read_json(path))
    except TypeError as e:
        raise VaelabError(f"{path}: not a configuration this vaelab can read ({e}); start a new run") from None


# What a checkpoint's configuration must share with config.json for its weights to be the run's model, on
# the run's data (other fields may differ: runtime options, a longer time budget, epochs turned into iters)
MODEL_AND_DATA = ("model", "model_options", "dataset", "resize", "binarize", "train_classes")


class Run:
    """A run folder written by `vaelab.train` / `vaelab train` (see `load_run`)."""

    def __init__(self, path, model: Model | None = None, data=None):
        if not isinstance(path, (str, os.PathLike)):
            raise VaelabError(f"path must be a run folder (a str or pathlib.Path), got {type(path).__name__}")
        path = Path(path)
        if not path.exists():
            raise VaelabError(f"{path.resolve()}: no such folder; pass a run folder that vaelab.train or "
                              f"`vaelab train` wrote (they print it)")
        if path.is_file():
            raise VaelabError(f"{path}: a file; pass the run folder itself"
                              + (f" ({path.parent})" if path.name == "config.json" else ""))
        if not (path / "config.json").is_file():
            raise VaelabError(f"{path}: not a vaelab run folder (no config.json); pass a folder that vaelab.train "
                              f"or `vaelab train` wrote")
        self.path = path
        self.config: TrainConfig = config_of(path)
        self._check_against(self.metrics, ("model", "dataset"), "metrics.json")
        self._user_model = model
        self._user_data = data   # your own data given in memory again (see load_run)
        self._data: dict = {}
        self._model_x_dim: int | None = None

    def _check_against(self, recorded: dict, fields: tuple[str, ...], where: str) -> None:
        """config.json against what another file of the run recorded (metrics.json when the run is opened, a
        checkpoint's configuration when its model is loaded): a run folder edited by hand (its data set or
        model changed) is refused before its model is evaluated on other data."""
        edited = {k: recorded.get(k) for k in fields if recorded and recorded.get(k) != getattr(self.config, k)}
        if edited:
            raise VaelabError(f"{self.path / 'config.json'}: {', '.join(edited)} differ(s) from {where} "
                              f"({', '.join(f'{k}={v!r}' for k, v in edited.items())}); the run folder was edited: "
                              f"restore config.json, or train a new run")

    def __repr__(self) -> str:
        done = self.finished_seeds
        state = "complete" if self.complete else f"{len(done)} of {len(self.config.seeds)} seeds finished"
        return f"Run({str(self.path)!r}: {self.config.model} on {self.config.dataset}, {state})"

    # -- what the folder holds --------------------------------------------------------------
    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.name

    @property
    def seeds(self) -> list[int]:
        """The training seeds the run was configured with."""
        return list(self.config.seeds)

    @property
    def metrics(self) -> dict:
        """metrics.json as a dict ({} before the first seed finishes): per_seed, mean_se, machine, date, ..."""
        return read_json(self.path / "metrics.json") if (self.path / "metrics.json").exists() else {}

    @property
    def finished_seeds(self) -> list[int]:
        """Seeds whose training and evaluation are complete (listed in metrics.json)."""
        return [int(s) for s in self.metrics.get("per_seed", {})]

    @property
    def complete(self) -> bool:
        """Whether every training seed has finished (training and evaluation)."""
        return set(self.finished_seeds) >= set(self.seeds)

    def seed_dir(self, seed: int | None = None) -> Path:
        """seed-S/ of a training seed (default: the first), the seed checked against the run's seeds."""
        seed = self._seed(seed)
        return self.path / f"seed-{seed}"

    def _seed(self, seed: int | None, what: str = "seed") -> int:
        if seed is None:
            seed = self.seeds[0]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise VaelabError(f"{what}={seed!r}: give one of the run's seeds as an int ({self.seeds})")
        if seed not in self.seeds:
            raise VaelabError(f"{what}={seed!r}: this run has seeds {self.seeds}")
        return seed

    def checkpoint_path(self, seed: int | None = None, best: bool = False) -> Path:
        """The weights a seed's results come from: the best epoch's (early stopping) or the last checkpoint;
        best=True: the best validation epoch's, which every run with a validation set keeps."""
        folder = self.seed_dir(seed)
        if best and not (folder / "best.pt").exists():
            raise VaelabError(f"{folder}: no best.pt; runs keep their best validation weights only with a "
                              f"validation set (val_size > 0), from the first validation on")
        for name in ("best.pt",) if best else (("best.pt", "checkpoint.pt") if self.config.patience else ("checkpoint.pt",)):
            if (folder / name).exists():
                return folder / name
        raise VaelabError(f"{folder}: no checkpoint yet; the seed has not reached its first checkpoint "
                          f"(resume the run: vaelab.train(..., out={str(self.path)!r}, resume=True))")

    def unfinished_note(self, seed: int | None = None) -> str | None:
        """A sentence saying a seed is still unfinished (which iteration), or None when it is complete."""
        seed = self._seed(seed)
        if seed in self.finished_seeds:
            return None
        ckpt = load_checkpoint(self.checkpoint_path(seed), "cpu")
        return (f"{self.path}: seed {seed} is unfinished (checkpoint at iteration {ckpt['iteration']} of "
                f"{ckpt['config'].get('iters')}); results from it are provisional")

    # -- results --------------------------------------------------------------------------------
    def summary(self, everything: bool = False) -> "MetricsTable":
        """Mean ± standard error of every metric over the finished seeds, as a table that shows the test
        metrics (bookkeeping such as timings and evaluation settings stays in it, listed under the table;
        everything=True shows those rows too)."""
        doc = self.metrics
        if not doc:
            raise VaelabError(f"{self.path}: no seed has finished yet, so there are no metrics; train or resume it")
        return MetricsTable(doc["mean_se"], title=f"{self.config.model} on {self.config.dataset}, "
                            f"{len(doc['per_seed'])} seed(s)", everything=everything)

    def per_seed(self) -> dict[int, dict]:
        """Each finished seed's metrics."""
        return {int(s): m for s, m in self.metrics.get("per_seed", {}).items()}

    def history(self, seed: int | None = None) -> dict:
        """A seed's training curves: iteration, the logged terms, validation values, seconds."""
        path = self.seed_dir(seed) / "history.json"
        if not path.exists():
            raise VaelabError(f"{path}: not written yet; the seed's training has not finished")
        return read_json(path)

    # -- the model and its data ---------------------------------------------------------------
    def model(self, seed: int | None = None, device: str = "cpu", best: bool = False) -> Model:
        """The model of one training seed (default: the first), in evaluation mode, with the weights its
        results come from: the best epoch's under early stopping, else the last. best=True: the weights
        of the epoch with the best validation loss (kept by every run with a validation set)."""
        dev = resolve_device(device)
        path = self.checkpoint_path(self._seed(seed), best=best)
        ckpt = load_checkpoint(path, dev)
        self._check_against(ckpt["config"], MODEL_AND_DATA, f"{path.parent.name}/{path.name}")
        self._model_x_dim = ckpt["x_dim"]   # for data(dataset=...): no second checkpoint read
        return load_model(ckpt, dev, model=self._user_model)

    def data(self, device: str = "cpu", dataset: str | None = None, data_dir: str | None = None,
             whole_training_set: bool = False) -> DeviceData:
        """The run's data on `device`, prepared exactly as in training and evaluation (cached).

        dataset: another data set of the same shape (e.g. to score anomalies on it); data_dir: where the
        data set is, if not where it was found at training time; whole_training_set: ignore the run's
        one-class training subset."""
        cfg = dataclasses.replace(self.config)
        if dataset is not None:
            cfg.dataset, cfg.data_origin = dataset, None
        if data_dir is not None:
            cfg.data_dir = str(data_dir)
        if whole_training_set or dataset is not None:
            cfg.train_classes, cfg.fresh_batches = None, False
        dev = resolve_device(device)
        classes = None if cfg.train_classes is None else tuple(cfg.train_classes)   # a list cannot be a key
        key = (str(dev), cfg.dataset, cfg.data_dir, classes, cfg.fresh_batches)
        if key not in self._data:
            given = self._user_data if dataset is None else None   # checked against the run's data_origin
            self._data[key] = prepare_data(cfg, dev, x_dim=self._x_dim() if dataset is not None else None,
                                           given=given)
        return self._data[key]

    def _x_dim(self) -> int | None:
        """The size of the model's input: as model() read it, else as the first seed with a checkpoint records
        it (None before any is written)."""
        if self._model_x_dim is None:
            for seed in self.seeds:
                try:
                    self._model_x_dim = load_checkpoint(self.checkpoint_path(seed), "cpu")["x_dim"]
                    break
                except VaelabError:
                    continue
        return self._model_x_dim

    def test_data(self, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the test set as evaluated: the fixed binarization (or grey levels), and the labels."""
        data = self.data(device)
        return data.test_x, data.test_y

    def codes(self, seed: int | None = None, device: str = "cpu", dataset: str | None = None,
              data_dir: str | None = None) -> dict[str, torch.Tensor]:
        """The model's codes (posterior means; an autoencoder's E(x)) of the run's data, for what comes next
        (retrieval, clustering, another model): {"train": (N, z_dim), "train_labels", "test", "test_labels"},
        of the training split (without the validation images; grey levels, or the fixed draw of binarize
        static) and of the test split's grey levels. dataset / data_dir: another data set of the same
        shape, as data() takes them."""
        model = self.model(seed, device)
        data = self.data(next(model.parameters()).device, dataset, data_dir, whole_training_set=True)
        return {"train": encode_all(model, data.train_x, data.train_y).cpu(), "train_labels": data.train_y.cpu(),
                "test": encode_all(model, data.test_x_grey, data.test_y).cpu(), "test_labels": data.test_y.cpu()}


def load_run(path, model: Model | None = None, data=None) -> Run:
    """Open a run folder written by `vaelab.train` or `vaelab train`.

    model: for a run trained on your own networks whose classes cannot be imported again, the model
    built the same way (e.g. `vaelab.VAE(encoder=MyEncoder(), decoder=MyDecoder(), z_dim=16)`); its
    weights are replaced by the run's.
    data: for a run trained on your own data given in memory (an array, (x, y), a dict or a torch
    Dataset), the same data again: the run's test set is split from it as in training, and data that
    differ from what the run recorded are refused. A folder or file the run was trained on is read again
    from its path."""
    if model is not None and not isinstance(model, Model):
        raise VaelabError(f"model must be a vaelab model (e.g. vaelab.VAE(encoder=..., decoder=...)), got "
                          f"{type(model).__name__}")
    return Run(path, model=model, data=data)


# Rows of metrics.json that describe how a run was evaluated or how fast it went, not how good its model is
BOOKKEEPING = ("eval_repeats", "n_test", "nelbo_mc_se", "train_seconds", "iters_per_second", "judge_test_accuracy")


class MetricsTable:
    """Mean ± standard error over seeds, metric by metric; shows as a table in a notebook.

    table["nelbo"] -> {"mean": ..., "se": ..., "n": ...}; table.to_dict() gives them all. The table shows
    the test metrics; the bookkeeping rows (BOOKKEEPING) are named under it, or shown with everything=True."""

    def __init__(self, mean_se: dict, title: str = "", everything: bool = False):
        self._rows, self.title = dict(mean_se), title
        self._hidden = [] if everything else [k for k in self._rows if k in BOOKKEEPING]

    def __getitem__(self, metric: str) -> dict:
        if metric not in self._rows:
            raise KeyError(f"no metric {metric!r}; this run has {', '.join(self._rows)}")
        return self._rows[metric]

    def __contains__(self, metric: str) -> bool:
        return metric in self._rows

    def __iter__(self):
        return iter(self._rows)

    def to_dict(self) -> dict:
        """The table as {row: {column: value}}."""
        return {k: dict(v) for k, v in self._rows.items()}

    def _lines(self):
        for k, v in self._rows.items():
            if k in self._hidden:
                continue
            se = f" ± {v['se']:.4g}" if v["n"] > 1 else ""
            yield k, f"{v['mean']:.6g}{se}", v["n"]

    def _footer(self) -> str:
        return f"also: {', '.join(self._hidden)} (summary(everything=True) shows them)" if self._hidden else ""

    def __str__(self) -> str:
        rows = list(self._lines())
        width = max([len(k) for k, _, _ in rows] + [6])
        head = [self.title] if self.title else []
        return "\n".join(head + [f"{k:<{width}}  {val}  (n={n})" for k, val, n in rows]
                         + ([self._footer()] if self._hidden else []))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(val)}</td><td>{n}</td></tr>"
                        for k, val, n in self._lines())
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        foot = f"<tfoot><tr><td colspan='3'>{html.escape(self._footer())}</td></tr></tfoot>" if self._hidden else ""
        return (f"<table>{caption}<thead><tr><th>metric</th><th>mean ± SE</th><th>seeds</th></tr></thead>"
                f"<tbody>{cells}</tbody>{foot}</table>")
