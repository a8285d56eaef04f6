"""The likelihood race: the IWAE-k bound on the full MNIST test set after a fixed budget of training time.

For each configuration and seed: train on dynamically binarized MNIST with `--time-budget` (2 threads
by default), keep the last weights, then evaluate the negative IWAE-k bound (k = 5000 by default) on
all 10,000 test images. Several budgets (`--minutes 15 30 60`) are one run per seed, continued: the
run folder runs/race/CONFIG-seedS is trained to the first budget and evaluated, then resumed with the
next (`vaelab train --resume RUN --time-budget ...`) and evaluated again; a later call with a longer
budget continues it the same way. Every result is kept in benchmarks/results/likelihood-race.json (one
entry per configuration, budget and seed; a later call adds to it); the table, the figure of nats
against minutes and the table of what each configuration adds are written again each time, with the
machine (CPU model, threads) and its measured matrix-product rate, by which a budget on another CPU
should be scaled.

    python benchmarks/likelihood_race.py --config vae-z32-warmup-exp --minutes 15 30 60 --seeds 0
    python benchmarks/likelihood_race.py --list
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import datetime
from pathlib import Path

import torch
from common import DEFAULT_DATA, RESULTS, command_line, portable

import vaelab
import vaelab.schedules
from vaelab.evaluate import evaluate_niwae

# name -> (model, options of vaelab.train): what each configuration adds is in its name.
CONFIGS = {
    "vae": ("vae", dict()),
    "vae-z32": ("vae", dict(z_dim=32)),
    "vae-z32-warmup-exp": ("vae", dict(z_dim=32, warmup=5, lr_schedule="exp:0.99")),
    "iwae5-z32-warmup-exp": ("vae", dict(z_dim=32, iw_k=5, warmup=5, lr_schedule="exp:0.99")),
    "vamp-z40-warmup-exp": ("vamp", dict(z_dim=40, k=500, warmup=5, lr_schedule="exp:0.99")),
    "hvae-iwae5-warmup-exp": ("hvae", dict(iw_k=5, warmup=5, lr_schedule="exp:0.99")),
    "vamp-iwae5-z40-warmup-exp": ("vamp", dict(z_dim=40, k=500, iw_k=5, warmup=5, lr_schedule="exp:0.99")),
}
# configuration -> (the one it extends, what it adds): the rows of the contributions table.
ADDS = {
    "vae-z32": ("vae", "latent 10 -> 32"),
    "vae-z32-warmup-exp": ("vae-z32", "KL warm-up 5 epochs, lr x 0.99 per epoch"),
    "iwae5-z32-warmup-exp": ("vae-z32-warmup-exp", "IWAE objective, k = 5"),
    "vamp-z40-warmup-exp": ("vae-z32-warmup-exp", "VampPrior K = 500, latent 40"),
    "hvae-iwae5-warmup-exp": ("iwae5-z32-warmup-exp", "two stochastic layers (IWAE paper's nets)"),
    "vamp-iwae5-z40-warmup-exp": ("vamp-z40-warmup-exp", "IWAE objective, k = 5"),
}
NAME = "likelihood-race"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        return platform.processor() or platform.machine()


def matmul_gflops(threads: int, repeats: int = 7) -> float:
    """The float32 rate of the issue's reference product, 1000x300 by 300x784, at `threads` threads: the
    median of `repeats` timings (a single one, taken as a process starts, once read 105 against 185)."""
    torch.set_num_threads(threads)
    a, b = torch.rand(1000, 300), torch.rand(300, 784)
    for _ in range(100):
        a @ b
    rates = []
    for _ in range(repeats):
        n, t = 200, time.perf_counter()
        for _ in range(n):
            a @ b
        rates.append(2 * 1000 * 300 * 784 * n / (time.perf_counter() - t) / 1e9)
    return sorted(rates)[len(rates) // 2]


def run_one(config: str, minutes: float, seed: int, args) -> dict:
    """Train (or continue) runs/race/CONFIG-seedS to `minutes` of training time, then its IWAE-k bound."""
    model, options = CONFIGS[config]
    out = Path(args.out) / f"{config}-seed{seed}"
    if out.exists():
        trained = vaelab.load_run(out).config.time_budget
        if trained and vaelab.schedules.parse_duration(trained) > minutes * 60:
            raise SystemExit(f"{out} has trained for {trained} already; give --minutes above that, or another --out")
    run = vaelab.train(model, dataset="mnist", data_dir=args.data_dir, seeds=[seed], out=out, resume=out.exists(),
                       epochs=3280, time_budget=f"{minutes:g}m", threads=args.threads, iwae_k=[1], eval_repeats=1,
                       progress=not args.no_progress, **options)
    hist = run.history(seed)
    x, _ = run.test_data()
    torch.set_num_threads(args.threads)
    torch.manual_seed(40_000 + seed)
    t = time.perf_counter()
    niwae = evaluate_niwae(run.model(seed), x, args.k, progress=not args.no_progress, compile=True)
    return {"config": config, "model": model, "options": options, "minutes": minutes, "seed": seed,
            "run": str(out), "iterations": hist.get("iterations_run", hist["iteration"][-1]),
            "epochs": hist.get("iterations_run", hist["iteration"][-1]) / (len(run.data().train_x) // 100),
            "train_seconds": hist["train_seconds"], f"niwae_{args.k}": niwae,
            "eval_seconds": time.perf_counter() - t, "eval_compiled": True, "nelbo": run.per_seed()[seed]["nelbo"]}


REFERENCE_GFLOPS = 135   # the 2-thread product rate the budgets were set on


def table(results: dict, k: int) -> str:
    """One row per run, then the mean ± SE over seeds of each configuration and budget."""
    from vaelab.runs.folder import mean_se

    rows = sorted(results.values(), key=lambda r: (r["config"], r["minutes"], r["seed"]))
    lines = [f"| configuration | budget here (min) | = min at {REFERENCE_GFLOPS} GFLOP/s | seed | epochs | train s | "
             f"test NELBO | **IWAE-{k}** | eval s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['minutes']:g} | {_reference_minutes(r):.1f} | "
                     f"{r['seed']} | {r['epochs']:.0f} | {r['train_seconds']:.0f} | {r['nelbo']:.2f} | "
                     f"**{r[f'niwae_{k}']:.2f}** | {r['eval_seconds']:.0f} |")
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["config"], nominal(r)), []).append(r)
    lines += ["", f"| configuration | budget (min at {REFERENCE_GFLOPS} GFLOP/s) | budget here (min) | seeds | "
              f"**IWAE-{k}, mean ± SE** | test NELBO, mean ± SE | epochs |", "|---|---|---|---|---|---|---|"]
    for (config, budget), rs in sorted(groups.items()):
        iw, nelbo = mean_se([r[f"niwae_{k}"] for r in rs]), mean_se([r["nelbo"] for r in rs])
        here = "/".join(sorted({f"{r['minutes']:g}" for r in rs}))
        epochs = f"{min(r['epochs'] for r in rs):.0f}-{max(r['epochs'] for r in rs):.0f}"
        lines.append(f"| {config} | {budget:g} | {here} | {len(rs)} | **{iw['mean']:.2f} ± {iw['se']:.2f}** | "
                     f"{nelbo['mean']:.2f} ± {nelbo['se']:.2f} | {epochs} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=CONFIGS)
    ap.add_argument("--list", action="store_true", help="list the configurations")
    ap.add_argument("--minutes", type=float, nargs="+", default=[15],
                    help="training-time budgets in minutes, ascending: one run continued from each to the next")
    ap.add_argument("--nominal", type=float, nargs="+",
                    help="the issue's budgets (minutes at 135 GFLOP/s) that --minutes stand for, one each; "
                         "default: the nearest to --minutes scaled by the measured rate")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--out", default="runs/race")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--results", default=str(RESULTS), help="folder of the results files")
    ap.add_argument("--rewrite", action="store_true", help="only write the table again from the JSON")
    args = ap.parse_args()
    if args.list or not (args.config or args.rewrite):
        for name, (model, options) in CONFIGS.items():
            print(f"{name:<24} {model:<6} {options}")
        return
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{NAME}.json"
    doc = json.loads(path.read_text()) if path.exists() else {"results": {}, "machines": {}}
    if args.rewrite:
        write_markdown(doc, args.k, results)
        return
    machine = f"{cpu_model()}, {args.threads} thread(s), torch {torch.__version__}"
    rate = matmul_gflops(args.threads)
    if args.minutes != sorted(args.minutes):
        ap.error("--minutes: give the budgets in ascending order (each continues the run of the one before)")
    if args.nominal is not None and len(args.nominal) != len(args.minutes):
        ap.error(f"--nominal: give one budget per --minutes ({len(args.minutes)}), not {len(args.nominal)}")
    for seed in args.seeds:
        for i, minutes in enumerate(args.minutes):
            r = run_one(args.config, minutes, seed, args)
            r.update(machine=machine, matmul_gflops=rate, command=command_line(),
                     date=datetime.now().isoformat(timespec="seconds"))
            if args.nominal:
                r["nominal_minutes"] = args.nominal[i]
            # read again: the file may have gained rows or notes while this run trained
            doc = json.loads(path.read_text()) if path.exists() else doc
            doc["results"][f"{args.config}/{minutes:g}/{seed}"] = r
            path.write_text(portable(json.dumps(doc, indent=2) + "\n"))   # after every budget: a long call keeps what it did
            write_markdown(doc, args.k, results)
            print(f"{args.config} seed {seed}, {minutes:g} min: IWAE-{args.k} {r[f'niwae_{args.k}']:.2f} "
                  f"after {r['epochs']:.0f} epochs")


def write_markdown(doc: dict, k: int, results: Path) -> None:
    machines = sorted({f"{x['machine']}: 1000x300 @ 300x784 float32 products at {x['matmul_gflops']:.0f} GFLOP/s"
                       + (f" ({x['remeasure_note']})" if "remeasure_note" in x else "") for x in doc["results"].values()})
    commands = sorted({x["command"] for x in doc["results"].values()})
    md = (f"# The likelihood race: IWAE-{k} after a training-time budget\n\n"
          "Dynamically binarized MNIST, full 10,000-image test set (fixed binarization), nats (lower is better). "
          "Each run trains with `--time-budget` (training time only; evaluation comes after) and its last weights "
          "are evaluated. The issue's budgets were set for a CPU whose 2-thread products run at about 135 GFLOP/s; "
          "the budget here is scaled by this machine's measured rate (below), and the third column converts it "
          "back by the rate the call measured at its start. That single measurement has read 105-140 GFLOP/s "
          "while repeated timings in the same session read 155-195, so the runs are grouped by the issue's "
          "budget they stand for (`--nominal`; second table). A longer budget of the same configuration and "
          "seed is the shorter one's run continued (`--resume` with a longer `--time-budget`). What each "
          "configuration adds is in its name (CONFIGS in the script) and in the third table.\n\n"
          + table(doc["results"], k) + "\n\n![IWAE-5000 against minutes of training](likelihood-race.png)\n\n"
          + contributions(doc["results"], k) + notes(doc["results"]) + "\n\nMachines: " + "; ".join(machines)
          + "\n\nCommands:\n\n" + "\n".join(f"    {c}" for c in commands) + "\n")
    (results / f"{NAME}.md").write_text(portable(md))
    figure(doc["results"], k, results / f"{NAME}.png")


def notes(results: dict) -> str:
    """What was recorded beside a run (a rate measured twice, other work sharing the CPU), if anything."""
    lines = [f"- {r['config']}, {r['minutes']:g} min, seed {r['seed']}: {r['note']}"
             for r in sorted(results.values(), key=lambda r: (r["config"], r["minutes"], r["seed"])) if r.get("note")]
    return "\n\nNotes:\n\n" + "\n".join(lines) if lines else ""


def _reference_minutes(r: dict) -> float:
    """The budget converted to the issue's reference CPU (135 GFLOP/s) by this machine's measured rate."""
    return r["minutes"] * r.get("matmul_gflops_remeasured", r["matmul_gflops"]) / REFERENCE_GFLOPS


def nominal(r: dict) -> float:
    """The issue's budget (15, 30, 60, ... minutes at the reference rate) a run stands for: runs of
    different sessions, whose CPUs differ, are compared and averaged by it. It is recorded when given
    (--nominal); else the nearest of the issue's budgets to the converted one (within 25%: single
    measurements of the product rate have varied by that much within a session)."""
    if r.get("nominal_minutes"):
        return r["nominal_minutes"]
    ref = _reference_minutes(r)
    return next((b for b in (15, 30, 60, 120, 240, 480, 960) if abs(ref - b) <= 0.25 * b), round(ref, 1))


def figure(results: dict, k: int, path: Path) -> None:
    """IWAE-k against the issue's budget in minutes (at the reference rate), one line per configuration:
    the mean over seeds at each budget, with its standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from vaelab.runs.folder import mean_se

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for config in sorted({r["config"] for r in results.values()}):
        budgets = sorted({nominal(r) for r in results.values() if r["config"] == config})
        xs, ys, es, ns = [], [], [], []
        for m in budgets:
            rs = [r for r in results.values() if r["config"] == config and nominal(r) == m]
            stat = mean_se([r[f"niwae_{k}"] for r in rs])
            xs.append(m)
            ys.append(stat["mean"])
            es.append(stat["se"])
            ns.append(len(rs))
        label = f"{config} ({'/'.join(map(str, ns))} seeds)" if len(set(ns)) > 1 else f"{config} ({ns[0]} seed{'s' * (ns[0] > 1)})"
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
    for target, what in ((87.5, "15-min target"), (86.0, "60-min target"), (84.5, "long-budget target")):
        ax.axhline(target, color="grey", lw=0.8, ls=":")
        ax.text(0.01, target, what, transform=ax.get_yaxis_transform(), va="bottom", fontsize=7, color="grey")
    ax.set_xscale("log")
    ticks = sorted({nominal(r) for r in results.values()})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(f"minutes of training (the issue's budget, at {REFERENCE_GFLOPS} GFLOP/s; 2 threads)")
    ax.set_ylabel(f"IWAE-{k} on the test set (nats)")
    ax.set_title("The likelihood race: dynamically binarized MNIST", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def contributions(results: dict, k: int) -> str:
    """What each configuration adds to the one it extends (ADDS), at every budget both were run at, on the
    seeds both have: the difference of the means (negative: fewer nats, better)."""
    lines = [f"What each configuration adds (IWAE-{k} difference to the configuration it extends, same budget "
             "and seeds; negative is better):", "",
             f"| configuration | extends | adds | budget (min at {REFERENCE_GFLOPS} GFLOP/s) | seeds | IWAE, nats | "
             "difference |", "|---|---|---|---|---|---|---|"]
    by = {(r["config"], nominal(r), r["seed"]): r[f"niwae_{k}"] for r in results.values()}
    for config, (parent, what) in ADDS.items():
        for minutes in sorted({m for c, m, _ in by if c == config}):
            seeds = sorted(s for c, m, s in by if c == config and m == minutes and (parent, m, s) in by)
            if not seeds:
                continue
            mine = sum(by[config, minutes, s] for s in seeds) / len(seeds)
            theirs = sum(by[parent, minutes, s] for s in seeds) / len(seeds)
            lines.append(f"| {config} | {parent} | {what} | {minutes:g} | {len(seeds)} | {mine:.2f} | "
                         f"**{mine - theirs:+.2f}** |")
    if len(lines) == 4:
        lines.append("| (no pair of configurations run at the same budget and seed yet) | | | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
