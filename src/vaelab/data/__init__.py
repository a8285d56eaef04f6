"""Data sets for vaelab: IDX reading, the data set registry and lookup, splits, binarization.

    dataset.py     the Dataset dataclass every loader returns
    registry.py    the image data sets vaelab knows (DatasetSpec, DATASETS, get_spec)
    files.py       where IDX files are looked for, SHA-256 checks, downloads
    datasets.py    loading: load_dataset, dataset_status
    toy.py         the generated 2D toy sets
    sprites.py     dSprites rendered in code (dsprites, dsprites-colour): render, the factor grid's indices
    transforms.py  split_validation, labelled_subset, resize_images
    user.py        a user's own data (arrays, tensors, .npz/.npy, image folders, torch Datasets):
                   user_dataset, fingerprint; arrays.py checks and converts them, images.py reads folders
    sources.py     a run's data by name, path or from memory (open_dataset), checked against what it recorded
    idx.py         reading and writing IDX files
    binarize.py    binarization; corruption.py: input noise for denoising autoencoders

    from vaelab.data import load_dataset
    ds = load_dataset("mnist-5k")            # offline, 4,000 train + 1,000 test
    ds = load_dataset("mnist", data_dir="/data")  # looks in /data/mnist/, $VAELAB_DATA, ...

    from vaelab.data import user_dataset
    ds = user_dataset("my_images/")          # one subfolder per class; 20% held out for testing
"""

from vaelab.data.binarize import (
    BINARIZE_MODES,
    STATIC_BINARIZATION_SEED,
    binarize_dynamic,
    binarize_static,
)
from vaelab.data.dataset import Dataset
from vaelab.data.datasets import dataset_status, load_dataset
from vaelab.data.files import (
    download_dataset,
    find_dataset,
    sha256_uncompressed,
    user_cache_dir,
    verify_checksums,
)
from vaelab.data.idx import read_idx, write_idx
from vaelab.data.sources import dataset_label, is_registered, load_given, open_dataset, user_source
from vaelab.data.registry import DATASETS, DEFAULT_DATASET, DatasetSpec, get_spec, is_generated, reads_no_files
from vaelab.data.sprites import SPRITE_DATASETS
from vaelab.data.transforms import labelled_subset, resize_images, split_validation
from vaelab.data.user import fingerprint, user_dataset

__all__ = [
    "BINARIZE_MODES",
    "DATASETS",
    "DEFAULT_DATASET",
    "Dataset",
    "DatasetSpec",
    "SPRITE_DATASETS",
    "STATIC_BINARIZATION_SEED",
    "binarize_dynamic",
    "binarize_static",
    "dataset_status",
    "download_dataset",
    "find_dataset",
    "fingerprint",
    "get_spec",
    "is_generated",
    "labelled_subset",
    "load_dataset",
    "resize_images",
    "read_idx",
    "reads_no_files",
    "sha256_uncompressed",
    "split_validation",
    "user_cache_dir",
    "verify_checksums",
    "user_dataset",
    "write_idx",
    "dataset_label",
    "is_registered",
    "load_given",
    "open_dataset",
    "user_source",
]
