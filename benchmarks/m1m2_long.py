"""M1+M2 with M1 trained long: test accuracy (100 labels) against M1's training time.

M1 is a `vae` run (latent 50, hidden 600-600: Kingma et al.'s M1) trained on dynamically binarized
MNIST with a time budget, by one of two recipes (`--m1`): `warmup-exp` (KL warm-up 5 epochs, lr x 0.99
per epoch) or `constant` (neither, as M1+M2's own first stage trains it). Each budget in
`--m1-minutes` continues the same run (`--resume` with a longer `--time-budget`), and a copy of the
run folder at that budget is what the M1+M2 runs of that budget take their M1 from (`--m1-run`), so
a later extension never changes the M1 of a finished row.

For every M1 budget the script records M1's test NELBO, its active units (latent dimensions whose
posterior mean varies over the data by more than 0.01) and two quick measures of how well its codes
separate the classes given the same 100 labelled images: the nearest labelled code's class (1-NN)
and an L2-regularised logistic regression on the codes, each scored on the 10,000 test images. These
take seconds, against about 25 minutes per M1+M2 seed. Then, for every seed in `--seeds`, an M1+M2
run trains M2 alone (`--m1-iters 0`) for `--iters` iterations on the frozen M1 and its test accuracy
is recorded (binarized with the fixed seed, and grey). One M1 (seed 0) serves every M2 seed; the 100
labelled images are the same in every seed (label seed 0), as in the default M1+M2 benchmark
(m1m2-mnist.md). Results: benchmarks/results/m1m2-long.{json,md}; a later call adds rows.

    python benchmarks/m1m2_long.py --m1 warmup-exp --m1-minutes 20 --seeds 0 1 2
    python benchmarks/m1m2_long.py --m1 constant --m1-minutes 3 6 12 --seeds    # M1 measures only
    python benchmarks/m1m2_long.py --m1 constant --m1-minutes 12 --seeds 0 --m1-active 0.1   # M2 on active units
    python benchmarks/m1m2_long.py --m1 constant --m1-minutes 12 --seeds 0 --m2-set cw=0.1 lw=0.002 hidden=300
    python benchmarks/m1m2_long.py --m1 constant --m1-minutes 12 --seeds 0 1 2 --m1-active 0.1 --m2-grey \
        --m2-set cw=10 lw=0.002 hidden=500 activation=softplus --iters 150000   # the best so far

`--m2-grey` trains M2 on M1's codes of the grey images (`--binarize none`): Kingma et al. computed M2's
features from grey MNIST with an M1 trained on binarized images; by default M2 sees dynamically binarized
ones, as M1 did. `--m2-set` gives M2 options of `m1m2` other than its default (e.g. Kingma et al.'s classifier weight: their
alpha = 0.1 on 1 labelled and 500 unlabelled images per minibatch is cw ~ 0.1 and lw ~ 0.002 in vaelab's
per-batch means, against the default cw = 100; and their M2's one hidden layer of 300 units).
`--m2-lr` and `--m2-lr-schedule` give M2 a learning rate and its schedule (`vaelab train --lr`,
`--lr-schedule`; e.g. 3e-4, exp:0.99).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from common import DEFAULT_DATA, RESULTS, command_line, model_options, portable
from likelihood_race import cpu_model, matmul_gflops

import vaelab
from vaelab.data import labelled_subset
from vaelab.runs.folder import mean_se

NAME = "m1m2-long"
NETS = dict(z_dim=50, hidden="600,600")   # Kingma et al.'s M1 networks
RECIPES = {"warmup-exp": dict(warmup=5, lr_schedule="exp:0.99"), "constant": {}}


def train_m1(recipe: str, minutes: float, args) -> Path:
    """OUT/m1-RECIPE trained (or continued) to `minutes` of training time; a copy of it at that budget."""
    out = Path(args.out) / f"m1-{recipe}"
    vaelab.train("vae", dataset="mnist", data_dir=args.data_dir, seeds=[0], out=out, resume=out.exists(),
                 epochs=3280, time_budget=f"{minutes:g}m", threads=args.threads, iwae_k=[1], eval_repeats=1,
                 progress=not args.no_progress, **NETS, **RECIPES[recipe])
    frozen = Path(args.out) / f"m1-{recipe}-{minutes:g}min"
    if not frozen.exists():
        shutil.copytree(out, frozen, ignore=shutil.ignore_patterns("*.lock"))
    return frozen


def probe_m1(path: Path, recipe: str, minutes: float) -> dict:
    """M1's training, its test NELBO, active units, and how well its codes classify with the 100 labels."""
    run = vaelab.load_run(path)
    model, data = run.model(0), run.data()
    x, y = run.test_data()
    xl, yl = labelled_subset(data.train_x, data.train_y, 10, 0)   # the labelled images M2 gets
    torch.manual_seed(0)
    with torch.no_grad():
        codes_l, codes_t = model.posterior_mean(torch.bernoulli(xl)), model.posterior_mean(x)
        codes_train = model.posterior_mean(torch.bernoulli(data.train_x[:10_000]))
    nearest = (yl[torch.cdist(codes_t, codes_l).argmin(1)] == y).float().mean().item()
    mu, sd = codes_l.mean(0), codes_l.std(0) + 1e-6
    w = torch.zeros(codes_l.shape[1], 10, requires_grad=True)
    b = torch.zeros(10, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy((codes_l - mu) / sd @ w + b, yl) + 1e-2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    logistic = (((codes_t - mu) / sd @ w + b).argmax(1) == y).float().mean().item()
    hist = run.history(0)
    return {"recipe": recipe, "m1_minutes": minutes, "m1_run": str(path),
            "m1_epochs": hist.get("iterations_run", hist["iteration"][-1]) / (len(data.train_x) // run.config.batch_size),
            "m1_train_seconds": hist["train_seconds"], "m1_test_nelbo": run.per_seed()[0]["nelbo"],
            "active_units": int((codes_train.var(0) > 0.01).sum()), "nearest_labelled": nearest,
            "logistic": logistic}


M2_ITERS = 30_000   # M2's default training length; another is part of a row's name


def m2_variant(args) -> list[str]:
    """What sets an M2 setting apart from the defaults (active dims, grey codes, M2 options, length, lr and its schedule), as name
    parts: the run folder joins them with '-', the results key with '/'."""
    return (([f"active{args.m1_active:g}"] if args.m1_active else []) + (["grey"] if args.m2_grey else [])
            + [f"{k}{v}" for k, v in sorted(args.m2.items())] + ([f"iters{args.iters}"] if args.iters != M2_ITERS else [])
            + ([f"lr{args.m2_lr:g}"] if args.m2_lr is not None else [])
            + ([f"lr{args.m2_lr_schedule}"] if args.m2_lr_schedule != "constant" else []))


def train_m2(m1: Path, seed: int, args) -> dict:
    """An M1+M2 run on the frozen M1 for one seed."""
    out = Path(f"{m1}-m2{''.join('-' + part for part in m2_variant(args))}-seed{seed}")
    run = vaelab.train("m1m2", dataset="mnist", data_dir=args.data_dir, seeds=[seed], out=out, resume=True,
                       iters=args.iters, m1_run=str(m1), m1_iters=0, m1_active=args.m1_active,
                       binarize="none" if args.m2_grey else "dynamic", lr_schedule=args.m2_lr_schedule,
                       **({"lr": args.m2_lr} if args.m2_lr is not None else {}),
                       threads=args.threads, iwae_k=[1], eval_repeats=1, progress=not args.no_progress, **args.m2)
    got = run.per_seed()[seed]
    return {"seed": seed, "m2_iters": args.iters, "m1_active": args.m1_active, "m2_options": args.m2,
            "m2_grey": args.m2_grey, "m2_lr_schedule": args.m2_lr_schedule, "m2_lr": args.m2_lr,
            "m2_dims": int(run.model(seed).active.sum()) if args.m1_active else None,
            "m2_train_seconds": got["train_seconds"],
            "accuracy": got["accuracy"], "accuracy_grey": got["accuracy_grey"], "nelbo": got["nelbo"], "run": str(out)}


def _m1_key(row: dict) -> str:
    """The M1 row an M2 row was trained on (rows written before M1s had keys: recipe/minutes)."""
    return row.get("m1_key", f"{row['recipe']}/{row['m1_minutes']:g}")


def write_markdown(doc: dict, results: Path) -> None:
    m1s = sorted(({"key": k, **v} for k, v in doc["m1"].items()), key=lambda r: (r["recipe"], r["m1_minutes"], r["key"]))
    rows = sorted(doc["results"].values(), key=lambda r: (_m1_key(r), r.get("m1_active", 0), r.get("m2_grey", False),
                                                          sorted(r.get("m2_options", {}).items()), r["m2_iters"],
                                                          r.get("m2_lr_schedule", "constant"), r.get("m2_lr") or 0,
                                                          r["seed"]))
    md = ["# M1+M2 with M1 trained long: test accuracy against M1's training time", "",
          "MNIST, 100 labels (10 per class, label seed 0), test images: 10,000. M1: `vae` with latent 50, hidden "
          "600-600, trained with `--time-budget` on dynamically binarized MNIST by one of two recipes: `warmup-exp` "
          "(KL warm-up 5 epochs, lr x 0.99 per epoch) or `constant` (neither, as M1+M2's own first stage trains "
          "it); one M1 per recipe (seed 0), continued from budget to budget. Kingma et al. (2014) report 0.967 for "
          "M1+M2.", "",
          "What each M1 gives: test NELBO, active units (posterior-mean variance over the data > 0.01), and the "
          "class of the nearest of the 100 labelled codes (1-NN) and a logistic regression on them, scored on the "
          "test images' codes (seconds of computation: a quick look at the features M2 will classify).", "",
          "| M1 | M1 recipe | M1 minutes | M1 epochs | M1 train s | M1 test NELBO | active units | 1-NN | logistic |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in m1s:
        md.append(f"| {r['key']} | {r['recipe']} | {r['m1_minutes']:g} | {r['m1_epochs']:.0f} | {r['m1_train_seconds']:.0f} | "
                  f"{r['m1_test_nelbo']:.2f} | {r['active_units']} | {r['nearest_labelled']:.4f} | "
                  f"{r['logistic']:.4f} |")
    md += ["", "M1+M2 on each M1: `m1m2 --m1-run M1 --m1-iters 0` (every iteration trains M2 on the frozen M1), "
           "default networks and weights unless the column names M2 options, M2 on all 50 dims of z1 or (`--m1-active 0.1`) only on the dims whose "
           "posterior-mean std exceeds 0.1, as Kingma et al.; M2 trained on M1's codes of dynamically binarized "
           "images or, where the column says grey images (`--m2-grey`), of the grey images as Kingma et al. "
           "Accuracy of q(y | z1 = mean of q(z1 | x)): on the test images as the run evaluates them (binarized with "
           "a fixed seed; grey for `--m2-grey` rows, so both columns match); accuracy (grey): on the grey test "
           "images. The stacked NELBO is on the same test inputs as the first column: for grey-image rows a "
           "Bernoulli cross-entropy of grey levels, not comparable with the others.", "",
           "| M1 | M1 epochs | M2 on | seed | M2 iterations | M2 train s | stacked NELBO | **accuracy** | "
           "accuracy (grey) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {_m1_key(r)} | {doc['m1'][_m1_key(r)]['m1_epochs']:.0f} | {_m2_on(r)} | {r['seed']} | {r['m2_iters']} | "
                  f"{r['m2_train_seconds']:.0f} | {r['nelbo']:.2f} | **{r['accuracy']:.4f}** | {r['accuracy_grey']:.4f} |")
    md += ["", "| M1 | M2 on | M2 iterations | seeds | **accuracy, mean ± SE** | accuracy (grey), mean ± SE |",
           "|---|---|---|---|---|---|"]
    def group_key(r):   # seeds of one setting (their active dims, chosen per seed, may differ in number)
        return (_m1_key(r), r.get("m1_active", 0), r.get("m2_grey", False), tuple(sorted(r.get("m2_options", {}).items())),
                r.get("m2_lr_schedule", "constant"), r.get("m2_lr") or 0, r["m2_iters"])

    for key in sorted({group_key(r) for r in rows}):
        group = [r for r in rows if group_key(r) == key]
        acc, grey = mean_se([r["accuracy"] for r in group]), mean_se([r["accuracy_grey"] for r in group])
        md.append(f"| {key[0]} | {_m2_on(group[0], [r.get('m2_dims') for r in group])} | {key[-1]} | {len(group)} | **{acc['mean']:.4f} ± "
                  f"{acc['se']:.4f}** | {grey['mean']:.4f} ± {grey['se']:.4f} |")
    def row_name(r):   # an M1 row (it has a key), or an M2 row with its setting
        return f"M1 {r['key']}" if "key" in r else f"M1 {_m1_key(r)} + M2 on {_m2_on(r)}, {r['m2_iters']} iterations, seed {r['seed']}"

    notes = [f"- {row_name(r)}: {r['note']}" for r in [*m1s, *rows] if r.get("note")]
    md += ["", *(["Notes:", "", *notes, ""] if notes else []),
           "Machines: " + "; ".join(sorted({r["machine"] for r in [*m1s, *rows]})), "",
           "Commands: " + "; ".join(f"`{c}`" for c in sorted({r["command"] for r in [*m1s, *rows]})) + " "
           f"(last written {datetime.now().isoformat(timespec='seconds')})", ""]
    (results / f"{NAME}.md").write_text(portable("\n".join(md)))


def _m2_on(row: dict, dims_of_seeds: list | None = None) -> str:
    """Which of M1's dims the row's M2 models (the range over `dims_of_seeds`, if given), and M2's options
    other than the defaults."""
    dims = "all dims"
    if row.get("m1_active"):
        n = sorted(dims_of_seeds or [row["m2_dims"]])
        dims = f"{n[0] if n[0] == n[-1] else f'{n[0]}-{n[-1]}'} active (std > {row['m1_active']:g})"
    dims += ", grey images" if row.get("m2_grey") else ""
    lr = row.get("m2_lr_schedule", "constant")
    return (dims + "".join(f", {k} = {v}" for k, v in sorted(row.get("m2_options", {}).items()))
            + (f", lr {row['m2_lr']:g}" if row.get("m2_lr") is not None else "")
            + (f", lr schedule {lr}" if lr != "constant" else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m1", choices=RECIPES, default="warmup-exp", help="how M1 is trained")
    ap.add_argument("--m1-minutes", type=float, nargs="+", default=[20],
                    help="M1's training-time budgets, ascending: one M1 run continued from each to the next")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2],
                    help="M2 seeds per M1 budget (none: measure the M1s only)")
    ap.add_argument("--iters", type=int, default=M2_ITERS, help="M2's training iterations")
    ap.add_argument("--m1-active", type=float, default=0.0,
                    help="M2 on M1's active units only: the dims whose posterior-mean std exceeds this (0: all)")
    ap.add_argument("--m2-set", nargs="+", default=[], metavar="NAME=VALUE",
                    help="M2 options of m1m2 (not z1_dim or the m1_ ones), e.g. cw=0.1 lw=0.002 hidden=300 (default: m1m2's)")
    ap.add_argument("--m2-grey", action="store_true",
                    help="M2 trains on M1's codes of the grey images (--binarize none), as Kingma et al.'s features; "
                         "default: of dynamically binarized ones")
    ap.add_argument("--m2-lr", type=float, default=None,
                    help="M2's learning rate (default: vaelab's, 1e-3; Kingma et al. used 3e-4)")
    ap.add_argument("--m2-lr-schedule", default="constant",
                    help="M2's learning-rate schedule (as `vaelab train --lr-schedule`, e.g. exp:0.99); default: constant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--out", default="runs/m1m2-long")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--results", default=str(RESULTS), help="folder of the results files")
    ap.add_argument("--rewrite", action="store_true", help="only write the table again from the JSON")
    args = ap.parse_args()
    if args.m1_minutes != sorted(args.m1_minutes):
        ap.error("--m1-minutes: give the budgets in ascending order (each continues the M1 run of the one before)")
    if args.m2_lr is not None and not 0 < args.m2_lr < float("inf"):
        ap.error(f"--m2-lr {args.m2_lr:g}: give a positive learning rate, e.g. 3e-4")
    try:
        vaelab.schedules.parse_schedule(args.m2_lr_schedule)
    except vaelab.VaelabError as e:
        ap.error(str(e).replace("--lr-schedule", "--m2-lr-schedule"))
    args.m2 = model_options("m1m2", args.m2_set, "--m2-set",   # the labels stay those the results file names
                            allowed=lambda name: not name.startswith("m1_") and name not in ("z1_dim", "labels_per_class", "label_seed"))
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{NAME}.json"
    doc = json.loads(path.read_text()) if path.exists() else {"m1": {}, "results": {}}
    if args.rewrite:
        write_markdown(doc, results)
        return
    machine = (f"{cpu_model()}, {args.threads} thread(s), torch {torch.__version__}, 1000x300 @ 300x784 float32 "
               f"products at {matmul_gflops(args.threads):.0f} GFLOP/s")
    stamp = dict(machine=machine, command=command_line())
    mine = {"m1": {}, "results": {}}   # this call's rows, merged into the file by save()
    for minutes in args.m1_minutes:
        m1 = train_m1(args.m1, minutes, args)
        key = m1_key(doc, args.m1, minutes, vaelab.load_run(m1).history(0)["train_seconds"])
        if key not in doc["m1"]:
            mine["m1"][key] = {**probe_m1(m1, args.m1, minutes), **stamp,
                               "date": datetime.now().isoformat(timespec="seconds")}
            doc = save(mine, path, results)
        m1_row = doc["m1"][key]
        print(f"M1 {key}: test NELBO {m1_row['m1_test_nelbo']:.2f}, 1-NN {m1_row['nearest_labelled']:.4f}")
        for seed in args.seeds:
            r = {"recipe": args.m1, "m1_minutes": minutes, "m1_key": key, **train_m2(m1, seed, args), **stamp,
                 "date": datetime.now().isoformat(timespec="seconds")}
            mine["results"]["/".join([key, *m2_variant(args), str(seed)])] = r
            print(f"M1 {key}, seed {seed}: accuracy {r['accuracy']:.4f} (grey {r['accuracy_grey']:.4f})")
            doc = save(mine, path, results)


def m1_key(doc: dict, recipe: str, minutes: float, train_seconds: float) -> str:
    """The results' name for an M1: that of the row with the same recipe, budget and training time (the
    same M1), else recipe/minutes, dated where that is taken (the recipe trained again, e.g. on another CPU)."""
    base = f"{recipe}/{minutes:g}"
    same = [k for k, row in doc["m1"].items() if k.split("@")[0] == base and row["m1_train_seconds"] == train_seconds]
    if same:
        return same[0]
    return base if base not in doc["m1"] else f"{base}@{datetime.now():%Y-%m-%d}"


def save(mine: dict, path: Path, results: Path) -> dict:
    """Merge this call's rows into the JSON and write the table, under a lock on the results folder: calls
    running side by side (e.g. two M2 settings at one thread each) share one file. Returns the merged rows."""
    fd = os.open(results, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        doc = json.loads(path.read_text()) if path.exists() else {"m1": {}, "results": {}}
        for part in ("m1", "results"):
            doc[part].update(mine[part])
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(portable(json.dumps(doc, indent=2) + "\n"))
        tmp.replace(path)
        write_markdown(doc, results)
    finally:
        os.close(fd)   # releases the lock
    return doc


if __name__ == "__main__":
    main()
