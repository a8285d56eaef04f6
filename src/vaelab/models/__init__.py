"""Model registry: a new model is one file plus one line here.

Each model module defines the model class and its options, one frozen dataclass (e.g. VAEOptions,
declared with models.options.option: type, default, help, rule): the keyword arguments its constructor
takes beyond the data dimension. The registry holds (class, options dataclass); `declared_options(name)`
reads the dataclass for the CLI flags, `vaelab.options()`, the validation and `with_defaults`.
"""
from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping

import torch

from ..errors import VaelabError, first_line
from . import ae, cae, cvae, dae, gmvae, hvae, m1m2, sae, ssvae, vae
from .base import Model, resolve
from .options import Option, option_table

MODELS = {
    "vae": (vae.VAE, vae.VAEOptions),
    "gmvae": (gmvae.GMVAE, gmvae.GMVAEOptions),
    "vamp": (gmvae.VampVAE, gmvae.VampOptions),
    "hvae": (hvae.HVAE, hvae.HVAEOptions),
    "ssvae": (ssvae.SSVAE, ssvae.SSVAEOptions),
    "m1m2": (m1m2.M1M2, m1m2.M1M2Options),
    "cvae": (cvae.CVAE, cvae.CVAEOptions),
    "ae": (ae.AE, ae.AEOptions),
    "sae": (sae.SparseAE, sae.SparseAEOptions),
    "cae": (cae.ContractiveAE, cae.ContractiveAEOptions),
    "dae": (dae.DenoisingAE, dae.DenoisingAEOptions),
}
for _name, (_cls, _) in MODELS.items():   # Model.registry_name reads it: the models know no registry
    _cls.registered_name = _name
# Constructor arguments beyond the declared options that a saved run may record: networks of the user's own.
NETWORK_OPTIONS = {"vae": {"encoder", "decoder", "n_classes"}, "cvae": {"encoder", "decoder"},
                   "gmvae": {"encoder", "decoder"}, "vamp": {"encoder", "decoder"}}


def model_class(name: str) -> type[Model]:
    """The class of a registered model name, or of a model class of your own recorded as module:Class."""
    if ":" in name:
        cls = resolve(name, "model class")
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise VaelabError(f"model class {name!r} is not a vaelab.Model subclass")
        return cls
    if name not in MODELS:
        raise VaelabError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name][0]


def declared_options(name: str) -> Mapping[str, Option]:
    """name -> Option (type, default, help, rule) of a registered model's declared options, in their order;
    none for a model class of your own (module:Class)."""
    return option_table(MODELS[name][1]) if name in MODELS else {}


def takes_data_option(cls: type[Model], name: str) -> bool:
    """Whether cls's constructor takes the data's `name` (image_shape): declared in DATA_OPTIONS, and a
    parameter of its __init__ (a subclass of your own whose __init__ leaves it out inherits the declaration)."""
    if name not in cls.DATA_OPTIONS:
        return False
    params = inspect.signature(cls.__init__).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def build_model(name: str, x_dim: int, **options) -> Model:
    """The model `name` (registered, or module:Class) for data of x_dim values, with its options
    (VaelabError if they are bad). Built-in models also accept the options of their own networks
    (encoder=, decoder= for the VAE family) beyond the declared ones, and those that describe the data
    (the class's DATA_OPTIONS: image_shape=(C, H, W) for the models with conv nets)."""
    cls = model_class(name)
    if isinstance(x_dim, bool) or not isinstance(x_dim, int) or x_dim < 1:
        raise VaelabError(f"x_dim = {x_dim!r}: a model needs a positive whole number of input values per example")
    if name in MODELS:
        known = (set(declared_options(name)) | NETWORK_OPTIONS.get(name, set())
                 | {k for k in cls.DATA_OPTIONS if takes_data_option(cls, k)})
        unknown = set(options) - known
        if unknown:
            raise VaelabError(f"model {name!r} has no option(s) {', '.join(sorted(unknown))}; it takes "
                              f"{', '.join(declared_options(name))}")
    try:
        return cls(x_dim=x_dim, **options)
    except ValueError as e:
        raise VaelabError(f"model {name!r}: {e}") from None
    except (RuntimeError, MemoryError, OverflowError) as e:   # e.g. layers too large to allocate
        reason = first_line(e)
        raise VaelabError(f"model {name!r} cannot be built with {options} ({reason}); use smaller sizes") from None


def with_defaults(name: str, options: dict) -> dict:
    """A run's saved model options with each option it left out standing at its declared default
    (a saved run records only what was asked for), so that two runs compare option by option; a model
    class of your own (module:Class) declares none."""
    return {**{k: o.default for k, o in declared_options(name).items()}, **options}


def load_model(ckpt: dict, device: torch.device | str = "cpu", model: Model | None = None) -> Model:
    """Rebuild a model from a checkpoint's config and weights, in evaluation mode (VaelabError if they do not fit).

    model: a model built the same way (for networks whose classes cannot be imported again); a copy of
    it receives the weights. The checkpoint's image shape (its channels and image_shape), goes to the models
    that take one (DATA_OPTIONS) unless the saved options already hold it."""
    cfg = ckpt["config"]
    options = cfg.get("model_options", {})
    if not isinstance(options, dict) or not isinstance(cfg.get("model"), str):
        raise VaelabError(f"checkpoint config names no model or has malformed options ({options!r}); "
                          f"the checkpoint is damaged, retrain")
    given = model is not None   # the user's model, not one rebuilt from the config
    try:
        if model is not None:
            model = copy.deepcopy(model).to(device)
        else:
            cls = model_class(cfg["model"])
            options_now = {k: v for k, v in options.items() if k not in cls.WEIGHT_OPTIONS}
            shape = ckpt.get("image_shape")   # (H, W), with the images' channels beside it
            if takes_data_option(cls, "image_shape") and isinstance(shape, (list, tuple)) and "channels" in ckpt:
                options_now.setdefault("image_shape", (ckpt["channels"], *shape))
            model = build_model(cfg["model"], ckpt["x_dim"], **options_now).to(device)
    except VaelabError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise VaelabError(f"checkpoint config cannot build model {cfg['model']!r} with options {options} "
                          f"({type(e).__name__}); the checkpoint is damaged, retrain") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError):
        nets = [v for k, v in options.items() if k in ("encoder", "decoder") and isinstance(v, str)]
        if given:   # the user's model: say how it differs from the one trained
            mine = model.options()
            theirs = with_defaults(cfg["model"], options)
            unused = ("hidden", "net", "channels") if options.get("encoder") else ()   # not saved with own networks
            diff = [f"{k}: run {v!r}, given {mine.get(k)!r}" for k, v in sorted(theirs.items())
                    if k in mine and k not in ("encoder", "decoder", *unused) and v != mine[k]
                    and not (isinstance(mine[k], tuple) and list(mine[k]) == v)]   # config.json holds tuples as lists
            raise VaelabError(f"the weights of this run do not fit the model given (model=...): build it as in "
                              f"training ({'; '.join(diff) if diff else 'same options, other network shapes'})") from None
        if nets:
            raise VaelabError(f"the run's own networks ({', '.join(nets)}), rebuilt without arguments, do not fit its "
                              f"weights; pass the model built as in training: vaelab.load_run(path, model=...)") from None
        raise VaelabError(f"checkpoint weights do not fit model {cfg['model']!r} with options "
                          f"{options}; the checkpoint is from a different model") from None
    return model.eval()
