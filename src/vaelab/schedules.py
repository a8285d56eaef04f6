"""Learning-rate schedules, KL warm-up and time budgets: what a long run needs, as pure functions of the step.

Each is a function of the iteration (and the iterations per epoch), so a resumed run follows the
same schedule with no state of its own.

    constant            lr throughout
    step:E:G            lr x G^floor(epoch / E)             (e.g. step:100:0.5: halve every 100 epochs)
    exp:G               lr x G^epoch                        (e.g. exp:0.99: 1% less every epoch)
    iwae                lr x 10^(-i/7) for 3^i epochs, i = 0..7 (Burda et al. 2016: 3,280 epochs in all)
"""
from __future__ import annotations

import math
import re

from .errors import VaelabError, arg

IWAE_EPOCHS = sum(3 ** i for i in range(8))   # 3,280


def parse_schedule(text: str) -> tuple:
    """('constant',), ('step', every, gamma), ('exp', gamma) or ('iwae',); VaelabError naming --lr-schedule."""
    t = str(text).strip().lower()
    if t in ("constant", "iwae"):
        return (t,)
    m = re.fullmatch(r"step:([0-9.]+):([0-9.eE+-]+)", t)
    if m:
        every, gamma = _number(m.group(1)), _number(m.group(2))
        if every and every > 0 and gamma and 0 < gamma <= 1:
            return ("step", every, gamma)
    m = re.fullmatch(r"exp:([0-9.eE+-]+)", t)
    if m:
        gamma = _number(m.group(1))
        if gamma and 0 < gamma <= 1:
            return ("exp", gamma)
    raise VaelabError(f"{arg('lr_schedule', text)}: give constant, step:EPOCHS:FACTOR (e.g. step:100:0.5), exp:FACTOR "
                      f"(e.g. exp:0.99) or iwae; factors are in (0, 1]")


def _number(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def lr_factor(schedule: tuple, epoch: float) -> float:
    """The factor the base learning rate is multiplied by at (fractional) epoch `epoch`."""
    kind = schedule[0]
    if kind == "constant":
        return 1.0
    if kind == "step":
        return schedule[2] ** math.floor(epoch / schedule[1])
    if kind == "exp":
        return schedule[1] ** epoch
    done, i = 0, 0   # iwae: stage i lasts 3^i epochs
    while i < 7 and epoch >= done + 3 ** i:
        done += 3 ** i
        i += 1
    return 10 ** (-i / 7)


def warmup_weight(iteration: int, warmup_iters: int) -> float:
    """The KL weight at an iteration: linear from 1/warmup_iters up to 1 over the warm-up, then 1."""
    return 1.0 if warmup_iters <= 0 else min(1.0, iteration / warmup_iters)


def parse_duration(text) -> float:
    """'90s', '15m', '1.5h' or a number of seconds -> seconds (> 0); VaelabError naming --time-budget."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text).lower())
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)] if m else 0.0
    if not seconds > 0 or not math.isfinite(seconds):
        raise VaelabError(f"{arg('time_budget', text)}: give a positive duration such as 90s, 15m or 1.5h")
    return seconds
