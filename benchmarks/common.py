"""Helpers shared by the benchmark scripts: where results go and how a command is recorded."""
from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


MACHINE_ROOTS = ("/tmp/",)   # output folders outside the workspace: written as OUT/... (not kept)


def portable(text: str) -> str:
    """text with every path of this machine written relative to the repository: the repository itself as
    ".", a folder beside it (the shared data, run folders) as ../NAME, a temporary output folder as OUT/NAME;
    so that a recorded command runs as written on any machine with the same layout."""
    repo, workspace = str(REPO), str(REPO.parent)
    text = text.replace(repo + "/", "").replace(repo, ".")
    text = text.replace(workspace + "/", "../")
    for root in MACHINE_ROOTS:
        text = text.replace(root, "OUT/")
    return text


def command_line() -> str:
    """The command as typed from the repository's root: the script and every relative path argument (one with a
    '/', not an option) written relative to the repository, whatever folder it was run from."""
    def from_root(arg: str) -> str:
        if arg.startswith("-") or "/" not in arg or Path(arg).is_absolute():
            return arg
        return os.path.relpath(os.path.abspath(arg), REPO)
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    return "python " + " ".join(shlex.quote(a) for a in [script, *map(from_root, sys.argv[1:])])


def save(name: str, payload: dict, markdown: str, folder: Path = RESULTS) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "date": datetime.now().isoformat(timespec="seconds"), **payload}
    (folder / f"{name}.json").write_text(portable(json.dumps(payload, indent=2) + "\n"))
    (folder / f"{name}.md").write_text(portable(markdown.rstrip() + f"\n\nCommand: `{payload['command']}` "
                                                f"({payload['date']})\n"))
    print(f"wrote {folder / name}.json and .md")


def model_options(model: str, items: list[str], flag: str = "--set", allowed=None) -> dict:
    """NAME=VALUE items as a model's options, each converted to the option's type (SystemExit naming
    `flag` for an unknown name, a missing '=' or a value of the wrong type)."""
    from vaelab.models import declared_options

    table = declared_options(model)
    known = [n for n in table if allowed is None or allowed(n)]
    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise SystemExit(f"{flag} {item}: give NAME=VALUE with NAME one of {', '.join(known)}")
        try:
            options[name] = table[name].type(value)
        except ValueError:
            raise SystemExit(f"{flag} {item}: {value!r} is not a {table[name].type.__name__}") from None
    return options


def train_command(cfg: dict, seeds: list[str]) -> str:
    """The `vaelab train` command of a run's saved configuration (options that differ from the defaults)."""
    from vaelab.models import with_defaults
    from vaelab.config import TrainConfig

    base, defaults = TrainConfig(), with_defaults(cfg["model"], {})
    parts = [f"vaelab train {cfg['model']} --dataset {cfg['dataset']}"]
    if cfg.get("resize"):
        parts.append(f"--resize {cfg['resize']}")
    parts.append(f"--epochs {cfg['epochs']}" if cfg.get("epochs") else f"--iters {cfg['iters']}")
    for key in ("patience", "batch_size", "lr", "binarize"):
        if cfg.get(key) is not None and cfg.get(key) != getattr(base, key):
            parts.append(f"--{key.replace('_', '-')} {cfg[key]}")
    parts.append("--seeds " + " ".join(seeds))
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in cfg["model_options"].items()
              if k not in defaults or v != defaults[k]]
    return " ".join(parts)
