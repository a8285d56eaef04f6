"""Codes for what comes next: a model's codes of a data set, nearest neighbours in code space, and how much
of the labels the codes carry (k-nearest-neighbour and linear-probe accuracy).

An autoencoder compresses: its codes are compact features that retrieval, clustering or another model
(a classifier, a latent diffusion model) can use instead of the pixels. The codes here are the posterior
means E[z | x] of the VAE family and an autoencoder's E(x), the same as `model.encode`.
"""
from __future__ import annotations

import torch

from .errors import VaelabError, positive_int


@torch.no_grad()
def encode_all(model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 2000) -> torch.Tensor:
    """The codes of every row of x, batch by batch: (len(x), z_dim) on x's device (y: the labels, for the
    conditional models, whose codes depend on them)."""
    batch_size = positive_int("batch_size", batch_size, "examples per forward pass")
    model.eval()
    parts = []
    for start in range(0, len(x), batch_size):
        yb = None if y is None or not model.conditional else y[start:start + batch_size]
        parts.append(model.encode(x[start:start + batch_size], yb))
    return torch.cat(parts) if parts else x.new_zeros((0, model.z_dim))


def nearest(database: torch.Tensor, queries: torch.Tensor, k: int = 5,
            chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices), each (len(queries), k): the k rows of `database` nearest to each query in
    Euclidean distance, nearest first; queries are taken `chunk` at a time, so memory stays at chunk x N."""
    k = positive_int("k", k, "neighbours per query")
    if k > len(database):
        raise VaelabError(f"k = {k} neighbours, but the database holds {len(database)} codes; lower k")
    dists, idx = [], []
    for start in range(0, len(queries), chunk):
        d = torch.cdist(queries[start:start + chunk].float(), database.float())
        top = d.topk(k, dim=1, largest=False)
        dists.append(top.values)
        idx.append(top.indices)
    if not dists:
        return queries.new_zeros((0, k)), torch.zeros((0, k), dtype=torch.long)
    return torch.cat(dists), torch.cat(idx)


def knn_accuracy(train_codes: torch.Tensor, train_y: torch.Tensor, test_codes: torch.Tensor, test_y: torch.Tensor,
                 k: int = 5) -> float:
    """Accuracy of the k-nearest-neighbour classifier in code space: each test code takes the most common
    label among its k nearest training codes (a tie goes to the label of the nearest of the tied)."""
    _, idx = nearest(train_codes, test_codes, k)
    votes = train_y.to(idx.device)[idx]                       # (n_test, k), nearest first
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    counts = torch.zeros(len(votes), n_classes, device=votes.device).scatter_add_(
        1, votes, torch.ones_like(votes, dtype=torch.float))
    # among the labels with the most votes, the one met first (nearest): weight each vote by a tiny rank bonus
    bonus = torch.zeros_like(counts).scatter_reduce_(
        1, votes, (k - torch.arange(k, device=votes.device, dtype=torch.float)).expand_as(votes) / (k * k + 1),
        reduce="amax")
    predicted = (counts + bonus).argmax(1)
    return (predicted == test_y.to(predicted.device)).float().mean().item()


def probe_accuracy(train_codes: torch.Tensor, train_y: torch.Tensor, test_codes: torch.Tensor,
                   test_y: torch.Tensor) -> float:
    """Test accuracy of a linear probe: multinomial logistic regression (scikit-learn, L2 with C = 1) fitted on
    the standardised training codes: how linearly the codes separate the classes."""
    from sklearn.linear_model import LogisticRegression   # imported on use: scikit-learn loads slowly

    a, b = train_codes.double().cpu(), test_codes.double().cpu()
    mean, std = a.mean(0), a.std(0).clamp_min(1e-8)
    probe = LogisticRegression(max_iter=2000)
    probe.fit(((a - mean) / std).numpy(), train_y.cpu().numpy())
    return float((probe.predict(((b - mean) / std).numpy()) == test_y.cpu().numpy()).mean())


def code_metrics(model, train_x, train_y, test_x, test_y, k: int = 5) -> dict:
    """knn_accuracy and probe_accuracy of the model's codes: fitted on the training codes, scored on the
    test codes (labelled data)."""
    train_codes, test_codes = encode_all(model, train_x, train_y), encode_all(model, test_x, test_y)
    return {f"knn{k}_accuracy": knn_accuracy(train_codes, train_y, test_codes, test_y, k),
            "probe_accuracy": probe_accuracy(train_codes, train_y, test_codes, test_y)}
