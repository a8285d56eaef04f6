"""Would another judge score a conditional run's samples at 0.90? Trains candidate judges on the real
training images of the run's data set and scores each on the real test images and on the run's
class-conditional samples, class by class.

Candidates: the project's judge itself (the cached one every run uses: MLP 784-300-300-10, ReLU,
Adam 1e-3, constant learning rate, 3,000 iterations of batch 100), the same MLP trained with a cosine
learning-rate schedule, the MLP with dropout, and a small conv net (32-64 channels, max pooling,
dropout 0.3) with and without augmentation (horizontal flips and shifts of up to 2 pixels).

    python benchmarks/judge_trials.py runs/rep-cvae/cvae --name cvae-fashion-judges
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from common import DEFAULT_DATA, save

from vaelab.nets import Classifier
from vaelab.runs.run import Run
from vaelab.judge import run_judge
from vaelab.batches import load_images


class ConvJudge(nn.Module):
    def __init__(self, side: int, n_classes: int = 10, drop: float = 0.3):
        super().__init__()
        self.side = side
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dropout(drop), nn.Linear(64 * (side // 4) ** 2, 128), nn.ReLU(), nn.Dropout(drop), nn.Linear(128, n_classes))

    def forward(self, x):
        return self.net(x.view(-1, 1, self.side, self.side))


def dropout_mlp(x_dim: int, n_classes: int = 10, drop: float = 0.3) -> nn.Module:
    return nn.Sequential(nn.Dropout(0.1), nn.Linear(x_dim, 300), nn.ReLU(), nn.Dropout(drop), nn.Linear(300, 300),
                         nn.ReLU(), nn.Dropout(drop), nn.Linear(300, n_classes))


def augment(x: torch.Tensor, side: int) -> torch.Tensor:
    img = x.view(-1, 1, side, side)
    img = torch.where((torch.rand(len(x)) < 0.5)[:, None, None, None], img.flip(-1), img)
    dy, dx = (int(d) for d in torch.randint(-2, 3, (2,)))
    img = torch.roll(F.pad(img, (2, 2, 2, 2)), shifts=(dy, dx), dims=(2, 3))[:, :, 2:-2, 2:-2]
    return img.reshape(len(x), -1)


CANDIDATES = {   # name: (build(x_dim, side), iterations, augment, cosine schedule); trained here
    "MLP, cosine schedule": (lambda d, s: Classifier(d), 3000, False, True),
    "MLP, dropout, cosine, 6k iterations": (lambda d, s: dropout_mlp(d), 6000, False, True),
    "conv, cosine": (lambda d, s: ConvJudge(s), 3000, False, True),
    "conv, augmented, cosine": (lambda d, s: ConvJudge(s), 3000, True, True),
}


def train(net, train_x, train_y, iters, aug, cosine, side):
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters) if cosine else None
    for _ in range(iters):
        idx = torch.randint(len(train_x), (100,))
        xb = augment(train_x[idx], side) if aug else train_x[idx]
        loss = F.cross_entropy(net(xb), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched:
            sched.step()
    return net.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = Run(args.run).config
    cfg.data_dir = args.data_dir or cfg.data_dir
    ds = load_images(cfg)
    side = ds.image_shape[0]
    model = Run(args.run).model()
    n_classes = len(ds.classes)
    ys = torch.arange(n_classes).repeat_interleave(args.per_class)
    torch.manual_seed(123)
    with torch.inference_mode():
        samples = model.sample(len(ys), ys)
    rows = {}
    judges = {"MLP (the project's judge, cached)": lambda: run_judge(cfg, torch.device("cpu"))[0],
              **{name: lambda c=c: train(c[0](ds.train_x.shape[1], side), ds.train_x, ds.train_y, *c[1:], side)
                 for name, c in CANDIDATES.items()}}
    for name, make in judges.items():
        t0 = time.perf_counter()
        net = make()
        with torch.inference_mode():
            real = (net(ds.test_x).argmax(-1) == ds.test_y).float()
            fake = (net(samples).argmax(-1) == ys).float()
        rows[name] = {"real": real.mean().item(), "samples": fake.mean().item(), "seconds": time.perf_counter() - t0,
                      "real_by_class": [real[ds.test_y == c].mean().item() for c in range(n_classes)],
                      "samples_by_class": [fake[ys == c].mean().item() for c in range(n_classes)]}
        print(f"{name}: real {rows[name]['real']:.4f}, samples {rows[name]['samples']:.4f}", flush=True)
    head = "| judge | real test images | samples | " + " | ".join(ds.classes) + " |\n|" + "---|" * (n_classes + 3) + "\n"
    body = "".join(f"| {n} | {r['real']:.4f} | **{r['samples']:.4f}** | "
                   + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(r["real_by_class"], r["samples_by_class"])) + " |\n"
                   for n, r in rows.items())
    md = (f"# Candidate judges on the samples of {args.run}\n\n"
          f"{cfg.model} on {cfg.dataset} ({side}x{side}); {args.per_class} samples z ~ N(0, I) per class, decoded with "
          f"the requested label (Bernoulli means). Each judge is trained on the real training images and scored on the "
          f"real test images and on the samples; the class columns give real / samples. The first row is the cached "
          f"judge that every run's report uses; the others are trained here.\n\n" + head + body)
    save(args.name, {"run": str(args.run), "per_class": args.per_class, "judges": rows}, md)


if __name__ == "__main__":
    main()
