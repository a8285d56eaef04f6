"""Codes for what comes next, on MNIST: how much of the labels a model's codes carry (k-NN and linear-probe
test accuracy, fitted on the training codes) and a retrieval figure (test queries beside their nearest
training images in code space), for a VAE and an autoencoder at their default networks.

Records benchmarks/results/NAME.{json,md} and NAME-MODEL.png.

    python benchmarks/retrieval.py --data-dir ../shared/data --threads 1
"""
from __future__ import annotations

import argparse
import time

from common import DEFAULT_DATA, RESULTS, save

import vaelab
from vaelab.codes import knn_accuracy, probe_accuracy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--models", nargs="+", default=["vae", "ae"])
    ap.add_argument("--iters", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="folder of the run folders (default: runs/bench-NAME-TIME)")
    ap.add_argument("--name", default="retrieval-mnist")
    args = ap.parse_args()
    out = args.out or f"runs/bench-{args.name}-{int(time.time())}"
    rows = {}
    for model in args.models:
        t0 = time.perf_counter()
        run = vaelab.train(model, "mnist", data_dir=args.data_dir, iters=args.iters, iwae_k=[1], threads=args.threads,
                           progress=False, tensorboard=False, out=f"{out}/{model}")
        codes = run.codes()
        rows[model] = {
            "z_dim": codes["train"].shape[1], "n_train": len(codes["train"]), "n_test": len(codes["test"]),
            "knn1": knn_accuracy(codes["train"], codes["train_labels"], codes["test"], codes["test_labels"], k=1),
            "knn5": knn_accuracy(codes["train"], codes["train_labels"], codes["test"], codes["test_labels"], k=5),
            "probe": probe_accuracy(codes["train"], codes["train_labels"], codes["test"], codes["test_labels"]),
            "seconds": time.perf_counter() - t0, "machine": run.metrics["machine"]}
        vaelab.plots.neighbours(run, k=8, save=RESULTS / f"{args.name}-{model}.png")
        print(model, rows[model], flush=True)
    table = "\n".join(f"| {m} | {r['z_dim']} | {r['knn1']:.4f} | {r['knn5']:.4f} | {r['probe']:.4f} | {r['seconds']:.0f} |"
                      for m, r in rows.items())
    figures = "\n\n".join(f"![{m}: each test query, then its 8 nearest training images by code]({args.name}-{m}.png)"
                          for m in rows)
    md = (f"# Codes for what comes next: MNIST\n\nEach model at its defaults trained {args.iters} iterations on "
          f"MNIST (one seed); its codes (posterior means; the autoencoder's E(x)) of the "
          f"{next(iter(rows.values()))['n_train']:,} training images (the validation images held out) and the "
          f"{next(iter(rows.values()))['n_test']:,} test images. Test accuracy of a k-nearest-neighbour "
          f"vote (Euclidean, k = 1 and 5) and of a linear probe (logistic regression on standardised codes), each "
          f"fitted on the training codes and labels. Machine: {next(iter(rows.values()))['machine']}.\n\n"
          f"| model | code size | 1-NN | 5-NN | linear probe | seconds (training, evaluation, codes) |\n"
          f"|---|---|---|---|---|---|\n{table}\n\nRetrieval: the first 8 test images (first column), each followed "
          f"by its 8 nearest training images in code space, nearest first.\n\n{figures}\n")
    save(args.name, {"rows": rows, "iters": args.iters}, md)


if __name__ == "__main__":
    main()
