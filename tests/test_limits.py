"""Sizes that scale memory or time are bounded before any work: one line naming the option and the limit,
never an allocator error from deep inside torch or the kernel's OOM killer."""
import os

import pytest

import vaelab
from conftest import CLI_QUICK as QUICK
from vaelab.cli import main
from vaelab.errors import VaelabError



@pytest.mark.parametrize("args, message", [
    (["vae", "--eval-repeats", "1000000000"], "--eval-repeats 1,000,000,000 is more than 10,000 (each pass"),
    (["vae", "--iwae-k", "1", "1000000000000"], "--iwae-k 1,000,000,000,000 is more than 1,000,000 (the time"),
    (["gmvae", "--k", "100000000"], "k = 100,000,000: the prior needs from 1 to 20,000 mixture components"),
    (["vamp", "--k", "100000000"], "k = 100,000,000: the VampPrior needs from 1 to 20,000 pseudo-inputs"),
    (["vae", "--iw-k", "1000000000"], "iw_k = 1,000,000,000: at most 1,000 samples per data point"),
    (["vae", "--mc-samples", "100000"], "mc_samples = 100,000: at most 1,000 samples per data point"),
    (["hvae", "--iw-k", "5000"], "iw_k = 5,000: at most 1,000 samples per data point"),
])
def test_training_sizes_are_bounded_before_any_work(args, message, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", args[0], "--out", str(out), *QUICK[:-4], *args[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_commands_on_a_run_bound_their_sizes(done, capsys):
    for args, message in [(["eval", str(done), "--iwae-k", "1000000000000"], "--iwae-k 1,000,000,000,000 is more"),
                          (["eval", str(done), "--eval-repeats", "1000000000"], "--eval-repeats 1,000,000,000 is"),
                          (["score", str(done), "--eval-repeats", "1000000000"], "--eval-repeats 1,000,000,000 is"),
                          (["sample", str(done), "--rows", "1000", "--cols", "1000"],
                           "--rows 1000 x --cols 1000 = 1,000,000 images: at most 10,000 per grid")]:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_python_calls_bound_their_sizes(done):
    run = vaelab.load_run(done)
    model = run.model()
    x, _ = run.test_data()
    calls = [
        (lambda: model.sample(10**9), r"^n = 1,000,000,000 samples needs about .* of memory, more than the .* free "
                                      r"on this machine; draw them in batches"),
        (lambda: model.iwae(x[:2], k=10**9), r"^k 1,000,000,000 is more than 1,000,000 \("),
        (lambda: vaelab.evaluate_niwae(model, x[:2], 10**12), r"^k 1,000,000,000,000 is more than 1,000,000"),
        (lambda: vaelab.evaluate_terms(model, x[:2], repeats=10**9), r"^repeats 1,000,000,000 is more than 10,000"),
        (lambda: vaelab.plots.samples(model, rows=1000, cols=1000), r"^rows=1000 x cols=1000 = 1,000,000 images"),
        (lambda: vaelab.plots.grid(x, rows=200, cols=200), r"^rows=200 x cols=200 = 40,000 images"),
        (lambda: vaelab.train("vae", eval_repeats=10**9, iters=10), r"^eval_repeats 1,000,000,000 is more than"),
        (lambda: vaelab.GMVAE(k=10**8), r"k = 100,000,000: the prior needs from 1 to 20,000"),
    ]
    for call, message in calls:
        with pytest.raises((VaelabError, ValueError), match=message):
            call()
    assert model.sample(3).shape == (3, 784) and model.iwae(x[:2], k=3).shape == (2,)


def test_the_memory_check_reads_what_the_machine_has_free():
    from vaelab.machine import available_memory, check_memory

    free = available_memory()
    if not os.path.exists("/proc/meminfo"):
        assert free is None
        return
    assert 0 < free < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    check_memory(free / 10, "a tenth", "nothing")
    with pytest.raises(VaelabError, match=r"^twice needs about .* of memory, more than the .* free on this machine; "
                                          r"ask for less$"):
        check_memory(2 * free, "twice", "ask for less")
