"""A folder of image files read into arrays: the folder form of ``vaelab.data.user.user_dataset``.

    folder/a.png, folder/b.png, ...           unlabelled
    folder/cat/1.png, folder/dog/7.jpg, ...   one subfolder per class (subfolder names sorted = classes)

Files are read with Pillow: PNG, JPEG, BMP, GIF (its first frame) and WebP; other files and hidden
ones (.DS_Store, ...) are skipped. Grey modes (1, L, LA, I;16, I) give one channel; one colour image
(RGB, RGBA, P, CMYK, ...) makes the whole set RGB: grey images are repeated over the 3 channels and
alpha is dropped (not composited). 16-bit grey is scaled by 65535, everything else by 255.

Two passes, so that no image is held twice: the headers first (sizes and modes, no pixels), then
each file is read once, hashed, decoded and written as float32 in [0, 1] straight into its row of a
preallocated array.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaelab.data.transforms import resize_images
from vaelab.errors import VaelabError, first_line
from vaelab.progress import progress_bar

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")   # 16-bit grey: scaled by 65535


def is_colour(mode: str) -> bool:
    return mode not in GREY_MODES


def pixels(img, colour: bool) -> np.ndarray:
    """A PIL image as float32 (C, H, W) in [0, 1]: C = 3 if ``colour`` else 1."""
    if img.mode in WIDE_MODES:
        grey = np.clip(np.asarray(img, dtype=np.float32) / 65535, 0.0, 1.0)
        return np.repeat(grey[None], 3, axis=0) if colour else grey[None]
    values = np.asarray(img.convert("RGB" if colour else "L"), dtype=np.float32) / 255
    return values.transpose(2, 0, 1) if colour else values[None]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def list_images(folder: Path, argument: str) -> tuple[list[str], list[int] | None, list[str]]:
    """(relative paths sorted, class index of each or None, class names) of an image folder."""
    entries = sorted(p for p in folder.iterdir() if _visible(p))
    subfolders = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if subfolders and files:
        raise VaelabError(f"{argument}: {folder} holds both image files ({files[0].name}) and subfolders "
                          f"({subfolders[0].name}); put every image in a class subfolder, or none")
    if not subfolders:
        if not files:
            raise VaelabError(_no_images(folder, entries, argument))
        return [p.name for p in files], None, []
    rels, labels = [], []
    for k, sub in enumerate(subfolders):
        found = sorted(p.name for p in sub.iterdir() if _visible(p) and p.is_file()
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise VaelabError(_no_images(sub, sorted(sub.iterdir()), argument) + " (each subfolder is a class)")
        rels += [f"{sub.name}/{f}" for f in found]
        labels += [k] * len(found)
    return rels, labels, [p.name for p in subfolders]


def _no_images(folder: Path, entries: list[Path], argument: str) -> str:
    others = ", ".join(p.name for p in entries[:3]) or "nothing"
    return (f"{argument}: {folder} holds no image files (found {others}); put PNG, JPEG, BMP, GIF or WebP "
            f"files in it, or one subfolder of them per class")


def _unreadable(path: Path, e: BaseException, argument: str) -> VaelabError:
    return VaelabError(f"{argument}: cannot read {path} as an image ({first_line(e, 120)}); "
                       f"remove or replace the file")


def scan(folder: Path, rels: list[str], argument: str, resize) -> tuple[tuple[int, int], bool, bool]:
    """Pass 1, headers only: ((H, W) of the set, colour?, 16-bit?). Mixed sizes need ``resize``."""
    first, colour, wide = None, False, False
    for rel in rels:
        try:
            with Image.open(folder / rel) as img:
                size, mode = img.size, img.mode
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise _unreadable(folder / rel, e, argument) from None
        colour, wide = colour or is_colour(mode), wide or mode in WIDE_MODES
        if first is None:
            first = (rel, size)
        elif size != first[1] and resize is None:
            (w0, h0), (w1, h1) = first[1], size
            raise VaelabError(
                f"{argument}: the images differ in size ({first[0]} is {w0}x{h0}, {rel} is {w1}x{h1} pixels, "
                f"width x height); give resize=(H, W) (CLI --resize) to bring them all to one size")
    w, h = first[1]
    return (tuple(resize) if resize is not None else (h, w)), colour, wide


def hash_file(h, rel: str, raw: bytes) -> None:
    """One file's share of a folder's sha256: its relative path, its length, its bytes."""
    h.update(rel.encode() + b"\0" + len(raw).to_bytes(8, "little"))
    h.update(raw)


def folder_sha256(folder: Path, rels: list[str]) -> str:
    h = hashlib.sha256()
    for rel in rels:
        hash_file(h, rel, (folder / rel).read_bytes())
    return h.hexdigest()


def read_images(folder: Path, rels: list[str], slots: list[tuple[np.ndarray, int]], size: tuple[int, int],
                colour: bool, argument: str, progress: bool) -> str:
    """Pass 2: file i decoded (resized to ``size`` if it differs) into row slots[i][1] of slots[i][0],
    an (n, C*H*W) float32 array. Returns the folder's sha256 (see ``hash_file``)."""
    h, channels = hashlib.sha256(), 3 if colour else 1
    bar = progress_bar(total=len(rels), desc=f"reading {folder.name}", unit="img", disable=not progress)
    with bar:
        for rel, (out, row) in zip(rels, slots):
            try:
                raw = (folder / rel).read_bytes()
                hash_file(h, rel, raw)
                with Image.open(io.BytesIO(raw)) as img:
                    values = pixels(img, colour)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise _unreadable(folder / rel, e, argument) from None
            if values.shape[1:] != size:
                shrink = values.shape[1] > size[0] or values.shape[2] > size[1]
                flat = torch.from_numpy(values).reshape(1, -1)
                values = resize_images(flat, values.shape[1:], size, channels, antialias=shrink).numpy()
            out[row] = values.reshape(-1)
            bar.update(1)
    return h.hexdigest()


def read_image_files(paths, channels: int, size: tuple[int, int], argument: str = "query") -> torch.Tensor:
    """Image files as rows of a model's inputs: (len(paths), channels * H * W) float32 in [0, 1], each
    converted to grey (channels 1) or RGB (channels 3) and resized (bilinear) to size = (H, W)."""
    rows = []
    for path in map(Path, paths):
        try:
            with Image.open(path) as img:
                img.load()
                array = pixels(img, channels == 3)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise _unreadable(path, e, argument) from None
        x = torch.from_numpy(np.ascontiguousarray(array))   # (C, H, W) in [0, 1]
        rows.append(resize_images(x.reshape(1, -1), tuple(x.shape[1:]), size, channels, antialias=True))
    return torch.cat(rows)
