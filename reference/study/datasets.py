"""Real data for the multi-class study: scikit-learn's bundled digits and local MNIST files.

* :func:`load_digits_split` — ``sklearn.datasets.load_digits`` (1,797 8×8 images, 10 classes,
  bundled with scikit-learn: nothing is downloaded), a stratified train/test split with a fixed
  seed, pixels scaled from 0..16 to 0..1.
* :func:`load_mnist` — MNIST from the four IDX files in a local folder (optionally ``.gz``),
  pixels scaled from 0..255 to 0..1, the official 60k/10k split. Nothing is ever downloaded.
* :func:`read_idx` — the IDX format, parsed with NumPy: two zero bytes, a type code, the number
  of dimensions, one big-endian ``uint32`` per dimension, then the values, big-endian.

scikit-learn is the optional extra ``study``; without it, :func:`load_digits_split` raises
:class:`MissingDependencyError` with the install command.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "DatasetError", "MissingDependencyError", "IDX_TYPES", "MNIST_FILES", "INSTALL_HINT",
           "load_digits_split", "load_mnist", "read_idx", "stratified_subset"]

INSTALL_HINT = "pip install 'scratchnet[study]'"

#: IDX type code -> big-endian numpy dtype
IDX_TYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: role -> file stem (the files may end in ``.gz``; ``train-images.idx3-ubyte`` spellings are accepted too)
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DatasetError(ValueError):
    """A data set that cannot be loaded: missing files, a corrupt IDX file, bad arguments."""


class MissingDependencyError(DatasetError):
    """An optional dependency (scikit-learn) is not installed."""


@dataclass(frozen=True)
class Dataset:
    """A classification data set split into train and test. ``x`` rows are float64 inputs in
    [0, 1], ``y`` integer class labels ``0..n_classes-1``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    description: str

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]


def stratified_subset(y: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``size`` rows of ``y`` keeping every class's share: scikit-learn's
    ``train_test_split(..., train_size=size, stratify=y, random_state=seed)`` on the row indices
    (all rows when ``size`` reaches their number)."""
    y = np.asarray(y)
    if size >= y.shape[0]:
        return np.arange(y.shape[0])
    if size < 1:
        raise DatasetError(f"the subset size must be ≥ 1, got {size}")
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise MissingDependencyError(f"a stratified subset needs scikit-learn: {INSTALL_HINT}") from None
    try:
        keep, _ = train_test_split(np.arange(y.shape[0]), train_size=size, stratify=y, random_state=seed)
    except ValueError as exc:  # fewer rows than classes, a class of one: say which argument
        raise DatasetError(f"a stratified subset of {size} rows of {y.shape[0]}: {exc}") from None
    return np.sort(keep)


def load_digits_split(test_size: float = 0.25, seed: int = 0, max_train: int | None = None) -> Dataset:
    """scikit-learn's digits (8×8 images, 10 classes), stratified ``train_test_split`` with
    ``random_state=seed``, pixels ``/ 16``. Raises :class:`MissingDependencyError` without
    scikit-learn."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise MissingDependencyError(f"the study needs scikit-learn for the digits data: {INSTALL_HINT} "
                                     "(or pass --mnist DIR with local MNIST files)") from None
    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0
    y = digits.target.astype(np.intp)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    if max_train is not None:
        keep = stratified_subset(y_train, max_train, seed)
        x_train, y_train = x_train[keep], y_train[keep]
    return Dataset("digits", np.ascontiguousarray(x_train), y_train.astype(np.intp), np.ascontiguousarray(x_test),
                   y_test.astype(np.intp), 10,
                   f"scikit-learn digits: {x_train.shape[0]} train / {x_test.shape[0]} test 8×8 images, "
                   f"stratified split (test_size={test_size}, random_state={seed}), pixels / 16")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` is decompressed), in native byte order.

    Raises :class:`DatasetError` naming the file when the header or the size is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path}: not a readable gzip file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (it must start with two zero bytes, a type code and "
                           f"the number of dimensions; got {raw[:4].hex() or 'an empty file'})")
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise DatasetError(f"{path}: unknown IDX type code 0x{code:02X} (expected one of {known})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"{path}: the header says shape {shape} of {dtype.name} ({expected} bytes of data), "
                           f"but the file holds {len(raw) - header} (truncated or corrupt)")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_mnist_file(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx", 1)
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_mnist(directory: str | os.PathLike[str], max_train: int | None = None, seed: int = 0) -> Dataset:
    """MNIST from ``directory`` (the four IDX files, optionally gzipped), pixels ``/ 255``,
    flattened to 784 columns. ``max_train`` keeps a stratified subset of the training set.
    Never downloads: missing files are a :class:`DatasetError` that lists them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"--mnist {directory}: no such folder (the study never downloads MNIST; put "
                           f"{', '.join(MNIST_FILES.values())} (or .gz) there)")
    found = {role: _find_mnist_file(directory, stem) for role, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[role] for role, path in found.items() if path is None]
    if missing:
        raise DatasetError(f"--mnist {directory}: missing {', '.join(missing)} (or .gz); the study never "
                           "downloads MNIST — copy the IDX files there")
    arrays = {role: read_idx(path) for role, path in found.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim < 2 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DatasetError(f"--mnist {directory}: {part} images {images.shape} and labels {labels.shape} "
                               "do not match (expected (N, rows, cols) and (N,))")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DatasetError(f"--mnist {directory}: {part} labels must lie in 0..9, "
                               f"got {labels.min()}..{labels.max()}")
    x_train = arrays["train_images"].reshape(arrays["train_images"].shape[0], -1).astype(np.float64) / 255.0
    x_test = arrays["test_images"].reshape(arrays["test_images"].shape[0], -1).astype(np.float64) / 255.0
    if x_train.shape[1] != x_test.shape[1]:
        raise DatasetError(f"--mnist {directory}: train images have {x_train.shape[1]} pixels, test images "
                           f"{x_test.shape[1]}")
    y_train = arrays["train_labels"].astype(np.intp)
    y_test = arrays["test_labels"].astype(np.intp)
    if max_train is not None:
        keep = stratified_subset(y_train, max_train, seed)
        x_train, y_train = x_train[keep], y_train[keep]
    side = "×".join(str(s) for s in arrays["train_images"].shape[1:])
    return Dataset("mnist", np.ascontiguousarray(x_train), y_train, np.ascontiguousarray(x_test), y_test, 10,
                   f"MNIST from {directory}: {x_train.shape[0]} train / {x_test.shape[0]} test {side} images"
                   f"{' (stratified subset)' if max_train is not None else ''}, pixels / 255")
