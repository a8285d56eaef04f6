"""vaelab: autoencoders and variational autoencoders, trained fast, measured honestly, shown in pictures.

    import vaelab
    run = vaelab.train("vae", dataset="mnist-5k", iters=2000)   # a run folder, every metric
    run.summary()                                              # mean ± SE over seeds
    model = run.model()                                        # the trained model
    fig = vaelab.plots.samples(model)                          # a matplotlib Figure

The pieces: `train`, `load_run` and `Run` (runs), `options` and the model classes (models),
`load_dataset` and `datasets` (data), `evaluate_terms` / `evaluate_niwae` (evaluation),
`vaelab.plots` (figures). docs/python-api.md walks through them.
"""
from ._version import __version__
from . import plots  # noqa: E402
from .api import datasets, load_run, options, train  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .data import load_dataset  # noqa: E402
from .errors import VaelabError  # noqa: E402
from .evaluate import anomaly_scores, evaluate_terms, evaluate_niwae, roc_auc  # noqa: E402
from .models import MODELS, Model, build_model  # noqa: E402
from .models.ae import AE  # noqa: E402
from .models.cae import ContractiveAE  # noqa: E402
from .models.cvae import CVAE  # noqa: E402
from .models.dae import DenoisingAE  # noqa: E402
from .models.gmvae import GMVAE, VampVAE  # noqa: E402
from .models.hvae import HVAE  # noqa: E402
from .models.m1m2 import M1M2  # noqa: E402
from .models.policy import ReportPolicy, TrainingDefaults  # noqa: E402
from .models.sae import SparseAE  # noqa: E402
from .models.ssvae import SSVAE  # noqa: E402
from .models.vae import VAE  # noqa: E402
from .models.variational import VariationalModel  # noqa: E402
from .runs.run import MetricsTable, Run  # noqa: E402

__all__ = ["__version__", "AE", "CVAE", "ContractiveAE", "DenoisingAE", "GMVAE", "HVAE", "M1M2", "MODELS", "MetricsTable", "Model", "ReportPolicy",
           "Run", "SSVAE", "SparseAE", "TrainConfig", "TrainingDefaults", "VAE", "VaelabError", "VampVAE", "VariationalModel", "anomaly_scores", "build_model", "datasets", "evaluate_terms",
           "evaluate_niwae", "load_dataset", "load_run", "options", "plots", "roc_auc", "train"]
