"""`vaelab reproduce`: the recipe registry, quick forms end to end, reports, missing-data messages."""
import re
import time

import pytest

from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.recipes import RECIPES, Figure, Section, Table, run_recipe, write_report

REQUIRED = ["vae-mnist", "gmvae-mnist", "ssvae-mnist", "ae-swissroll", "dae-fashion", "cvae-fashion",
            "convvae-mnist-bce-vs-mse", "vae-mnist-latent", "anomaly-mnist", "ae-pca-mnist"]
NUMBER = r"\d+\.\d+"


def _embedded_images(html: str) -> int:
    return len(re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', html))


def test_registry_lists_every_recipe(capsys):
    assert set(REQUIRED) <= set(RECIPES)
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert name in out
    assert "data: mnist (--quick: mnist-5k)" in out and "fashion-mnist" in out


def test_unknown_recipe_and_missing_name(capsys):
    assert main(["reproduce", "no-such-recipe"]) == 2
    assert "unknown recipe 'no-such-recipe'" in capsys.readouterr().err
    assert main(["reproduce"]) == 2
    assert "--list" in capsys.readouterr().err


def test_missing_data_says_what_to_install(tmp_path, monkeypatch):
    import vaelab.data.files as files

    monkeypatch.delenv("VAELAB_DATA", raising=False)
    monkeypatch.setattr(files, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(VaelabError) as e:
        run_recipe("dae-fashion", quick=True, data_dir=str(tmp_path / "empty"), out=tmp_path / "out", progress=False)
    msg = str(e.value)
    assert "needs the fashion-mnist data set" in msg and "train-images-idx3-ubyte.gz" in msg and "--data-dir" in msg
    assert not (tmp_path / "out").exists()   # nothing written before the data are found
    with pytest.raises(VaelabError, match="--quick"):   # the full form points at the quick form's embedded data
        run_recipe("vae-mnist", data_dir=str(tmp_path / "empty"), out=tmp_path / "out", progress=False)


def test_out_folder_in_use_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something").write_text("x")
    with pytest.raises(VaelabError, match="not an empty folder"):
        run_recipe("ae-swissroll", quick=True, out=tmp_path / "out", progress=False)


def test_report_writer_escapes_and_embeds(tmp_path):
    import matplotlib.pyplot as plt
    import numpy as np

    png = tmp_path / "runs" / "fig.png"
    png.parent.mkdir()
    plt.imsave(png, np.zeros((4, 4)), cmap="gray")
    md, page = write_report(tmp_path, "T <1>", ["intro **bold**", "", "- a", "- b"],
                            [Section("S & s", ["text `code`", Table(["h1", "h2"], [["1.00", "<x>"], ["p(x|z)", "y"]]),
                                               Figure(png, "cap")])])
    text, html = md.read_text(), page.read_text()
    assert "| h1 | h2 |" in text and "| p(x\\|z) | y |" in text and "![cap](runs/fig.png)" in text
    assert "<strong>bold</strong>" in html and "<li>a</li>" in html and "<code>code</code>" in html
    assert "&lt;x&gt;" in html and "S &amp; s" in html and "T &lt;1&gt;" in html
    assert 'src="data:image/png;base64,' in html and "runs/fig.png" not in html


@pytest.mark.slow
def test_vae_mnist_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "vae"
    assert main(["reproduce", "vae-mnist", "--quick", "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "not comparable" in md
    for ref in ("99.96", "19.16", "80.80", "100.49"):   # the reference values next to ours
        assert ref in md and ref in html
    assert re.search(rf"\| NELBO \| {NUMBER} ± {NUMBER} \| 99\.96 \| 100\.49 \|", md)
    assert re.search(rf"\| IWAE-100 \| {NUMBER} ± {NUMBER} \|", md)
    assert re.search(rf"\| 4 \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", md)   # beta table row
    assert (out / "vae" / "metrics.json").exists() and (out / "beta-4" / "metrics.json").exists()
    assert _embedded_images(html) == 2 and "](vae/samples.png)" in md


@pytest.mark.slow
def test_swissroll_and_anomaly_quick(tmp_path):
    out = run_recipe("ae-swissroll", quick=True, out=tmp_path / "swiss", threads=1, progress=False)
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    share = r"\d+\.\d%"   # samples on the data
    assert re.search(rf"\| AE \| {NUMBER} \| {share} \|", md)
    assert re.search(rf"\| Gaussian VAE .*\| {NUMBER} \| {share} \| {NUMBER} \| {NUMBER} \|", md)
    assert _embedded_images(html) == 1
    out = run_recipe("anomaly-mnist", quick=True, out=tmp_path / "anomaly", threads=1, progress=False,
                     options={"classes": [0, 1]})
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert re.search(r"\| AUC \(vaelab AE\) \| 0\.\d{4} \| 0\.\d{4} \| \*\*0\.\d{4}\*\* \|", md)
    assert "0.92" in md and "0.95" in md and "classes [0, 1] only" in md and "Deep SVDD" in html


@pytest.mark.slow
def test_ae_pca_quick_end_to_end(tmp_path):
    """The linear AE / PCA / JL recipe on mnist-5k with tiny iteration counts: every table and figure, in well
    under a minute (about 15 s on one quiet thread; the bound leaves room for a busy machine)."""
    t0 = time.perf_counter()
    out = run_recipe("ae-pca-mnist", quick=True, out=tmp_path / "pca", threads=1, progress=False)
    assert time.perf_counter() - t0 < 60
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "not comparable" in md
    for size in (2, 10):   # linear AE vs PCA: MSEs, gap, principal angles; ReLU AE beside them
        assert re.search(rf"\| {size} \| 0\.\d{{5}} \| 0\.\d{{5}} \| [+-]\d+\.\d\d% \| .+ \| {NUMBER} \| {NUMBER} \|", md)
        assert re.search(rf"\| {size} \| 0\.\d{{5}} \| 0\.\d{{5}} \| 0\.\d{{5}} \| [+-]\d+\.\d\d% \|", md)
        assert (out / f"linear-ae-z{size}" / "metrics.json").exists() and (out / f"ae-z{size}" / "config.json").exists()
    for size in (2, 5, 10, 20, 50, 100, 200, 400):   # the JL table: random projection and PCA at every size
        assert re.search(rf"\| {size} \| random projection \| {NUMBER} \| {NUMBER} - {NUMBER} \|", md)
        assert re.search(rf"\| {size} \| PCA code \| {NUMBER} \|", md)
    assert re.search(rf"\| 200 \| random projection \|.*\| 0\.737 \| {NUMBER} \|", md)   # JL eps, n = 1,000
    assert "| 10 | ReLU AE code |" in md and "| 2 | linear AE code |" in md
    assert _embedded_images(html) == 4
    for png in ("convergence.png", "jl-distortion.png", "components.png", "reconstructions.png"):
        assert f"]({png})" in md and (out / png).exists()


def test_an_interrupted_recipe_continues_with_resume(tmp_path, monkeypatch):
    """anomaly-mnist stopped after its first class's run: --resume keeps that run as it is, trains the rest,
    writes the report; a folder of another recipe or form, or of none, is refused."""
    import vaelab.recipes.blocks as blocks

    real, calls = blocks.score_run, []

    def stop_after_one(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(blocks, "score_run", stop_after_one)
    out = tmp_path / "anomaly"
    with pytest.raises(KeyboardInterrupt):
        run_recipe("anomaly-mnist", quick=True, out=out, threads=1, progress=False, options={"classes": [0, 1]})
    monkeypatch.setattr(blocks, "score_run", real)
    first = (out / "class-0" / "seed-0" / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(VaelabError, match=r"not an empty folder.*add resume to continue"):
        run_recipe("anomaly-mnist", quick=True, out=out, threads=1, progress=False, options={"classes": [0, 1]})
    with pytest.raises(VaelabError, match=r"holds anomaly-mnist \(quick form\), not anomaly-mnist \(full form\)"):
        run_recipe("anomaly-mnist", out=out, resume=True, progress=False)
    run_recipe("anomaly-mnist", quick=True, out=out, threads=1, progress=False, options={"classes": [0, 1]},
               resume=True)
    assert (out / "report.md").is_file() and (out / "class-1" / "metrics.json").is_file()
    assert (out / "class-0" / "seed-0" / "model.safetensors").stat().st_mtime_ns == first   # kept, not retrained
    with pytest.raises(VaelabError, match=r"holds no recipe \(recipe.json missing\)"):
        run_recipe("anomaly-mnist", quick=True, out=tmp_path, resume=True, progress=False)
