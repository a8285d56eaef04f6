"""Data sets for vaelab: IDX reading, the data set registry and lookup, splits, binarization.

    from vaelab.data import load_dataset
    ds = load_dataset("mnist-5k")            # offline, 4,000 train + 1,000 test
    ds = load_dataset("mnist", data_dir="/data")  # looks in /data/mnist/, $VAELAB_DATA, ...
"""

from vaelab.data.binarize import (
    BINARIZE_MODES,
    STATIC_BINARIZATION_SEED,
    binarize_dynamic,
    binarize_static,
)
from vaelab.data.datasets import (
    DATASETS,
    DEFAULT_DATASET,
    Dataset,
    DatasetSpec,
    dataset_status,
    download_dataset,
    find_dataset,
    get_spec,
    labelled_subset,
    load_dataset,
    resize_images,
    sha256_uncompressed,
    split_validation,
    user_cache_dir,
    verify_checksums,
)
from vaelab.data.idx import read_idx, write_idx

__all__ = [
    "BINARIZE_MODES",
    "DATASETS",
    "DEFAULT_DATASET",
    "Dataset",
    "DatasetSpec",
    "STATIC_BINARIZATION_SEED",
    "binarize_dynamic",
    "binarize_static",
    "dataset_status",
    "download_dataset",
    "find_dataset",
    "get_spec",
    "labelled_subset",
    "load_dataset",
    "resize_images",
    "read_idx",
    "sha256_uncompressed",
    "split_validation",
    "user_cache_dir",
    "verify_checksums",
    "write_idx",
]
