"""Model registry: a new model is one file plus one line here.

Each model module defines the model class and OPTIONS (name -> (type, default, help)),
the keyword arguments its constructor takes beyond the data dimension.
"""
from __future__ import annotations

from ..errors import VaelabError
from . import ae, cae, cvae, dae, gmvae, m1m2, sae, ssvae, vae

MODELS = {
    "vae": (vae.VAE, vae.OPTIONS),
    "gmvae": (gmvae.GMVAE, gmvae.OPTIONS),
    "ssvae": (ssvae.SSVAE, ssvae.OPTIONS),
    "m1m2": (m1m2.M1M2, m1m2.OPTIONS),
    "cvae": (cvae.CVAE, cvae.OPTIONS),
    "ae": (ae.AE, ae.OPTIONS),
    "sae": (sae.SparseAE, sae.OPTIONS),
    "cae": (cae.ContractiveAE, cae.OPTIONS),
    "dae": (dae.DenoisingAE, dae.OPTIONS),
}


def build_model(name: str, x_dim: int, **options):
    if name not in MODELS:
        raise VaelabError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    cls, known = MODELS[name]
    unknown = set(options) - set(known)
    if unknown:
        raise VaelabError(f"model {name!r} has no option(s) {', '.join(sorted(unknown))}; it takes {', '.join(known)}")
    try:
        return cls(x_dim=x_dim, **options)
    except ValueError as e:
        raise VaelabError(f"model {name!r}: {e}") from None
    except (RuntimeError, MemoryError, OverflowError) as e:   # e.g. layers too large to allocate
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise VaelabError(f"model {name!r} cannot be built with {options} ({reason}); use smaller sizes") from None
