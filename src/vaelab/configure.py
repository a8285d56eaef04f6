"""From a user's arguments to a TrainConfig: the one builder that `vaelab.train` and `vaelab train` share.

Both faces hand over the same Python names (the command line turns its flags into them first, in
`cli.py`), so every option is read here once: a model name or instance, the data set, seeds, the run
folder, then each option sorted into a training option (a field of `TrainConfig`) or a model option
(`vaelab.options(model)`), with sizes such as `hidden=[300, 300]` in the one string form config.json keeps.
`TrainConfig.validate()` then checks each value once. `resume_changes` says which asked values differ
from a saved run's, for both faces' refusals of a resume that would change the run.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path

from .config import EXTENDABLE, RUNTIME_OPTIONS, TrainConfig
from .data import reads_no_files, user_source
from .errors import VaelabError, arg
from .models import MODELS, NETWORK_OPTIONS, Model, declared_options, with_defaults

TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "model_options")]
_NOT_COMPARED = (*RUNTIME_OPTIONS, *EXTENDABLE, "out", "model_options")   # what a resume may change or moves


def build_config(model: str | Model, dataset: str, seeds, out, options: dict) -> tuple[TrainConfig, Model | None]:
    """(TrainConfig, the model instance or None) from a model name or instance, a data set, seeds (a list or
    one int), the run folder and the other options by their Python names; each name checked, values not yet
    (TrainConfig.validate does that)."""
    instance, name, known = _model(model)
    options = _merged(dict(options))
    train_opts = {k: v for k, v in options.items() if k in TRAIN_FIELDS}
    model_opts = {k: _sizes(v) if known[k].type is str else v for k, v in options.items() if k in known}
    unknown = sorted(set(options) - set(train_opts) - set(model_opts))
    if unknown:
        raise VaelabError(_unknown_message(unknown, name, known, instance))
    if options.get("iters") is not None and options.get("epochs") is not None:
        raise VaelabError(f"give {arg('iters')} or {arg('epochs')}, not both ({arg('epochs')}: that many passes over "
                          f"the training set)")
    data_dir = options.get("data_dir")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise VaelabError(f"{arg('data_dir', str(data_dir))}: no such folder; give the folder that holds DATASET/ "
                          f"subfolders, or leave it out")
    if data_dir is not None and user_source(dataset):   # it would be stored and ignored
        raise VaelabError(f"{arg('data_dir', str(data_dir))} is given, but {arg('dataset')} is your own data, read "
                          f"from its path or from memory; leave {arg('data_dir')} out")
    if data_dir is not None and reads_no_files(dataset):   # it would be stored and ignored
        raise VaelabError(f"{arg('data_dir', str(data_dir))} is given but {dataset} reads no files (embedded or "
                          f"generated): pass {arg('dataset', 'mnist')} (or another data set found in that folder), or "
                          f"leave {arg('data_dir')} out")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    for field in ("iwae_k", "train_classes"):   # one value for a list of one, as seeds
        if isinstance(train_opts.get(field), int) and not isinstance(train_opts[field], bool):
            train_opts[field] = [train_opts[field]]
    cfg = TrainConfig(model=name, dataset=dataset, seeds=list(seeds), out=None if out is None else str(out),
                      model_options=instance.saved_options() if instance is not None else model_opts, **train_opts)
    return cfg, instance


def resume_changes(saved: TrainConfig, model, dataset, seeds, options: dict) -> list[tuple[str, object, object]]:
    """(name, saved value, asked value) of each asked option that differs from the saved run's configuration;
    what may change on a resume (RUNTIME_OPTIONS, EXTENDABLE) is not compared, and an option left out keeps
    its saved value."""
    fixed = {k: v for k, v in options.items() if k not in (*RUNTIME_OPTIONS, *EXTENDABLE, "out")}
    given, _ = build_config(saved.model if model is None else model, saved.dataset if dataset is None else dataset,
                            saved.seeds if seeds is None else seeds, saved.out, fixed)
    was, now = dataclasses.asdict(saved), dataclasses.asdict(given)
    asked = {"model", "dataset", "seeds", *fixed} - {k for k, v in (("model", model), ("dataset", dataset),
                                                                    ("seeds", seeds)) if v is None}
    changed = [(k, was.get(k), now[k]) for k in now if k in asked and k not in _NOT_COMPARED and now[k] != was.get(k)]
    old_options = with_defaults(given.model, was["model_options"])   # model options by their own names
    changed += [(k, old_options.get(k), v) for k, v in given.model_options.items() if v != old_options.get(k)]
    if options.get("out") is not None and Path(options["out"]) != Path(str(saved.out)):
        changed.append(("out", saved.out, str(options["out"])))
    return sorted(changed, key=lambda c: c[0])


def _model(model) -> tuple[Model | None, str, Mapping]:
    """(instance or None, registry name, the model's declared options by name) of a model name or instance."""
    if isinstance(model, Model):
        return model, model.registry_name(), {}
    if isinstance(model, str):
        if model not in MODELS:
            raise VaelabError(f"{arg('model', model)}: unknown; choose one of {', '.join(MODELS)} or pass a model "
                              f"instance")
        return None, model, declared_options(model)
    raise VaelabError(f"model must be a model name ({', '.join(MODELS)}) or a vaelab model instance, "
                      f"got {type(model).__name__}")


def _merged(options: dict) -> dict:
    """The options with TrainConfig's `model_options` dict, if given, merged in: the same as one by one."""
    if "model_options" in options:
        given = options.pop("model_options")
        if not isinstance(given, dict):
            raise VaelabError(f"model_options must be a dict of the model's options (e.g. {{'z_dim': 16}}), got "
                              f"{type(given).__name__}")
        if set(given) & set(TRAIN_FIELDS):   # TrainConfig's own fields are not the model's
            raise VaelabError(f"model_options holds training option(s) {', '.join(sorted(set(given) & set(TRAIN_FIELDS)))}"
                              f": give them as arguments of train(), e.g. iters=5000")
        if set(given) & set(options):
            raise VaelabError(f"{', '.join(sorted(set(given) & set(options)))} given both in model_options and as "
                              f"an argument: give each once")
        options = {**options, **given}
    return {k: _plain(v) for k, v in options.items()}


def _unknown_message(unknown: list[str], name: str, known: Mapping, instance: Model | None) -> str:
    """Unknown options, each with the model that has it or the nearest known name."""
    hints = []
    for k in unknown:
        owners = [n for n in MODELS if k in declared_options(n)]   # another model's option
        close = difflib.get_close_matches(k, [*TRAIN_FIELDS, *known], n=1)
        hints.append(f"{k!r}" + (f" (an option of {', '.join(owners)})" if owners else
                                 f" (did you mean {close[0]!r}?)" if close else ""))
    where = "the model instance's own arguments set its options" if instance is not None else \
        f"vaelab.options({name!r}) lists the model's"
    if instance is None and {"encoder", "decoder"} & set(unknown):   # networks go to the model's class
        cls = MODELS[name][0].__name__ if name in NETWORK_OPTIONS else "VAE"
        where += (f"; networks of your own go to the model class: vaelab.train(vaelab.{cls}(encoder=..., "
                  f"decoder=..., ...), ...) ({', '.join(MODELS[n][0].__name__ for n in NETWORK_OPTIONS)} take them)")
    return (f"unknown option(s) {', '.join(hints)} for train(): training options are the fields of "
            f"vaelab.TrainConfig; {where}")


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
