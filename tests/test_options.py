"""A model's options are one frozen dataclass (models/options.py): the CLI flags, vaelab.options(), the
validation and the saved runs' defaults all read it."""
import dataclasses
from dataclasses import dataclass

import pytest

import vaelab
from vaelab.models import MODELS, declared_options, with_defaults
from vaelab.models.options import (FINITE_NUMBER, NONNEGATIVE_INT, POSITIVE_INT, POSITIVE_NUMBER, SEED, SWITCH, option,
                                   option_table)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_declares_its_options_in_one_frozen_dataclass(name):
    declaration = MODELS[name][1]
    assert dataclasses.is_dataclass(declaration) and declaration.__dataclass_params__.frozen
    table = declared_options(name)
    assert [o.name for o in table.values()] == [f.name for f in dataclasses.fields(declaration)]
    assert with_defaults(name, {}) == dataclasses.asdict(declaration())   # the dataclass's defaults
    assert [(o.name, repr(o.default), o.help) for o in table.values()] == list(vaelab.options(name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        declaration().z_dim = 3


def test_rules_are_declared_where_the_guess_would_be_wrong():
    """beta, the seeds and dae's clip declare their rule; the rest is guessed from type and default."""
    rules = {(name, o.name): o.rule for name in MODELS for o in declared_options(name).values()}
    assert rules["vae", "beta"] is rules["gmvae", "beta"] is rules["cvae", "beta"] is POSITIVE_NUMBER
    assert rules["ssvae", "label_seed"] is rules["m1m2", "m1_seed"] is SEED
    assert rules["dae", "clip"] is SWITCH
    assert rules["vae", "z_dim"] is POSITIVE_INT and rules["m1m2", "m1_iters"] is NONNEGATIVE_INT
    assert rules["sae", "top_k"] is NONNEGATIVE_INT and rules["ssvae", "lw"] is FINITE_NUMBER
    assert rules["vae", "hidden"] is None and rules["ssvae", "activation"] is None   # the model parses strings
    assert not POSITIVE_NUMBER.ok(0.0) and not SEED.ok(2**32) and SWITCH.ok(True) and not SWITCH.ok(2)


def test_extended_options_keep_their_places():
    """A subclass's redeclared field keeps its place, new ones follow: cvae is the VAE's options with
    n_classes last; m1m2 is M1's options, then the SSVAE's (z_dim redeclared in place), then z1_sigma."""
    vae, cvae = list(declared_options("vae")), list(declared_options("cvae"))
    assert cvae == [*vae, "n_classes"] and declared_options("cvae")["net"].default == "conv"
    assert declared_options("cvae")["net"].help == declared_options("vae")["net"].help
    m1m2 = list(declared_options("m1m2"))
    assert m1m2[:6] == ["z1_dim", "m1_hidden", "m1_iters", "m1_run", "m1_seed", "m1_active"]
    assert m1m2[6:-1] == list(declared_options("ssvae")) and m1m2[-1] == "z1_sigma"
    assert declared_options("m1m2")["m1_iters"].type is int   # int | None: the flag converts to int
    assert list(declared_options("dae"))[:4] == list(declared_options("ae"))


def test_a_field_without_option_or_of_another_type_is_refused():
    @dataclass(frozen=True)
    class NoHelp:
        z_dim: int = 10

    @dataclass(frozen=True)
    class Listed:
        sizes: tuple = option((1,), "a tuple")

    with pytest.raises(TypeError, match="NoHelp.z_dim: declare it as option"):
        option_table(NoHelp)
    with pytest.raises(TypeError, match="Listed.sizes: an option is an int, a float or a str"):
        option_table(Listed)
    assert declared_options("some.module:Class") == {}   # a class of your own declares none
