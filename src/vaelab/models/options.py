"""A model's options, declared once: one frozen dataclass per model, one field per option.

    @dataclass(frozen=True)
    class VAEOptions:
        \"\"\"The VAE's options (`vaelab train vae --help`).\"\"\"
        z_dim: int = option(10, "latent dimension")
        beta: float = option(1.0, "weight of the KL term ...", rule=POSITIVE_NUMBER)

From it come `vaelab.options(model)`, the CLI flags of `vaelab train MODEL` (one per field, in field
order, the annotation's type converting the text), the check of each value (`TrainConfig.validate`, and
the flags' argparse types with the same rule), and the defaults a saved run is compared with
(`with_defaults`). The constructor keeps its own signature, readable where the maths is; a test checks
that every default there is the declaration's. A model that extends another's options subclasses its
dataclass: a field redeclared keeps its place, a new one comes after the inherited ones.

The rule of an option is declared with `rule=` where the guess from its type and default would be wrong
(beta > 0, a seed, a 0/1 switch); otherwise it is guessed, so that most declarations stay one line:
an int is a positive integer (sizes, counts), or an integer >= 0 where its default is 0 or None (stage
lengths, off switches); a float is a finite number; a string takes any text (the model parses it).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Callable, NamedTuple

MAX_SEED = 2**32 - 1   # the largest seed (of a run or of an option such as label_seed)


class Rule(NamedTuple):
    """What a value of an option must be: ok(value), and the words that say so in the error message."""
    ok: Callable[[object], bool]
    what: str


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


POSITIVE_INT = Rule(lambda v: _whole(v) and v > 0, "a positive integer")
NONNEGATIVE_INT = Rule(lambda v: _whole(v) and v >= 0, "an integer >= 0")
SEED = Rule(lambda v: _whole(v) and 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")
SWITCH = Rule(lambda v: isinstance(v, int) and v in (0, 1), "0 or 1")   # from Python also False or True
FINITE_NUMBER = Rule(_number, "a finite number")
POSITIVE_NUMBER = Rule(lambda v: _number(v) and v > 0, "a positive finite number")


class Option(NamedTuple):
    """One declared option: its name, the type the command line converts to, default, help, and rule
    (declared or guessed; None: any value of the type, which the model parses)."""
    name: str
    type: type
    default: object
    help: str
    rule: Rule | None


def option(default, help: str, rule: Rule | None = None):
    """A field of a model's options dataclass: its default, the help text of `--help` and
    `vaelab.options()`, and its rule where the guess from type and default would be wrong."""
    return dataclasses.field(default=default, metadata={"help": help, "rule": rule})


@functools.cache
def option_table(declaration: type) -> types.MappingProxyType:
    """name -> Option of a model's options dataclass, in field order (read-only: made once per class)."""
    hints = typing.get_type_hints(declaration)
    table = {}
    for f in dataclasses.fields(declaration):
        if "help" not in f.metadata or f.default is dataclasses.MISSING:
            raise TypeError(f"{declaration.__name__}.{f.name}: declare it as option(default, help)")
        typ = _cli_type(hints[f.name], f"{declaration.__name__}.{f.name}")
        rule = f.metadata["rule"] or _guessed_rule(typ, f.default)
        table[f.name] = Option(f.name, typ, f.default, f.metadata["help"], rule)
    return types.MappingProxyType(table)


def option_defaults(declaration: type) -> dict:
    """name -> default of every option declared."""
    return {name: o.default for name, o in option_table(declaration).items()}


def _cli_type(hint, where: str) -> type:
    """The type a flag converts its text to: the annotation, without None (`int | None` -> int)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    if hint not in (int, float, str):
        raise TypeError(f"{where}: an option is an int, a float or a str (or one of them | None)")
    return hint


def _guessed_rule(typ: type, default) -> Rule | None:
    if typ is int:
        return NONNEGATIVE_INT if default in (0, None) else POSITIVE_INT
    if typ is float:
        return FINITE_NUMBER
    return None
