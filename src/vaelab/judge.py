"""Sample quality as a classifier sees it.

A small classifier (the "judge": MLP 784-300-300-10, ReLU) is trained once per data set on its
real training images (grey levels) and cached in the user cache folder together with its
accuracy on the real test set. Generated images (Bernoulli means / Gaussian means) are then
classified:

- class-conditional samples: the fraction the judge assigns to the requested class (also per class,
  to set beside the judge's own per-class accuracy on the real test images);
- unconditional samples: class coverage (the normalised entropy of the judge's predicted-class
  histogram: 1 = all classes equally often, 0 = a single class) and the judge's mean confidence.
"""
from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .batches import load_images
from .data import is_registered, user_cache_dir
from .nets import Classifier
from .storage import atomic_write_bytes

JUDGE_ITERS = 3000
JUDGE_VERSION = 1


def _paths(dataset: str):
    folder = user_cache_dir() / "judges"
    stem = f"{dataset}-v{JUDGE_VERSION}"
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def train_judge(train_x, train_y, test_x, test_y, n_classes: int, iters: int = JUDGE_ITERS, seed: int = 0):
    """Train the judge on grey training images; returns (classifier, test accuracy)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    judge = Classifier(train_x.shape[1], n_classes).to(train_x.device)
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    for _ in range(iters):
        idx = torch.randint(len(train_x), (100,), device=train_x.device)
        loss = F.cross_entropy(judge(train_x[idx]), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.random.set_rng_state(gen_state)   # training the judge does not shift the caller's random stream
    judge.eval()
    with torch.inference_mode():
        acc = (judge(test_x).argmax(-1) == test_y).float().mean().item()
    return judge, acc


def load_or_train_judge(dataset: str, data_grey, n_classes: int = 10):
    """The cached judge of a data set, trained on first use. data_grey: (train_x, train_y, test_x, test_y)."""
    weights, info = _paths(dataset)
    judge = Classifier(data_grey[0].shape[1], n_classes).to(data_grey[0].device)
    if weights.exists() and info.exists():
        try:
            judge.load_state_dict(load_file(str(weights), device=str(data_grey[0].device)))
            accuracy = json.loads(info.read_text())["test_accuracy"]
            # NaN weights would judge every sample the same and report NaN scores as fine
            if all(torch.isfinite(v).all() for v in judge.state_dict().values()) and 0 <= accuracy <= 1:
                return judge.eval(), accuracy
        except Exception:   # noqa: BLE001 -- a damaged cache entry (any way it fails to load) is retrained
            pass
    judge, acc = train_judge(*data_grey, n_classes)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().cpu() for k, v in judge.state_dict().items()}, str(weights))
    atomic_write_bytes(info, json.dumps({"dataset": dataset, "test_accuracy": acc, "iters": JUDGE_ITERS}).encode())
    return judge, acc


@torch.inference_mode()
def accuracy_by_class(judge, x, y, n_classes: int) -> list[float]:
    """The judge's accuracy on the images of each class (what a generator's per-class score compares with)."""
    hit = (judge(x).argmax(-1) == y).float()
    return [hit[y == c].mean().item() for c in range(n_classes)]


@torch.inference_mode()
def sample_quality(model, judge, n_classes: int = 10, per_class: int = 100) -> dict:
    """Judge the model's samples: conditional accuracy (conditional models) or coverage and confidence."""
    n = per_class * n_classes
    if model.conditional:
        y = torch.arange(n_classes, device=next(model.parameters()).device).repeat_interleave(per_class)
        probs = F.softmax(judge(model.sample(n, y)), -1)
        hit = (probs.argmax(-1) == y).float()
        return {"sample_class_accuracy": hit.mean().item(),
                "sample_class_accuracy_by_class": hit.view(n_classes, per_class).mean(1).tolist(),
                "sample_confidence": probs.max(-1).values.mean().item()}
    probs = F.softmax(judge(model.sample(n)), -1)
    hist = torch.bincount(probs.argmax(-1), minlength=n_classes).float() / n
    entropy = -(hist[hist > 0] * hist[hist > 0].log()).sum().item()
    return {"sample_class_coverage": entropy / math.log(n_classes),
            "sample_confidence": probs.max(-1).values.mean().item()}


def run_judge(cfg, device):
    """(judge, its real test accuracy, its accuracy per class name) for a run's data set; None for data
    that are not images of at least two classes, and for your own data (the cache is kept per data set name).
    Trained once per data set and image size, then cached."""
    if not is_registered(cfg.dataset) or cfg.data_origin is not None:
        return None
    ds = load_images(cfg)
    if ds.image_shape is None or len(ds.classes) < 2:   # 2D toy data: no images to judge
        return None
    grey = [t.to(device) for t in (ds.train_x, ds.train_y, ds.test_x, ds.test_y)]
    h, w = ds.image_shape
    judge, acc = load_or_train_judge(f"{cfg.dataset}-{h}x{w}", grey, len(ds.classes))
    return judge, acc, dict(zip(ds.classes, accuracy_by_class(judge, grey[2], grey[3], len(ds.classes))))
