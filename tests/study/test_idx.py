"""The IDX reader and the MNIST loader, on tiny files written here byte by byte (not with the
code under test), and the errors for missing or corrupt files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from scratchnet_reference import cli
from scratchnet_reference.study.datasets import DatasetError, load_mnist, read_idx, stratified_subset


def idx_bytes(array: np.ndarray, code: int, fmt: str) -> bytes:
    """IDX by the book: 0, 0, type code, ndim, big-endian uint32 dims, big-endian values."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + b"".join(struct.pack(fmt, v) for v in array.ravel().tolist())


@pytest.mark.parametrize("code, fmt, values", [
    (0x08, ">B", np.array([[[0, 1, 2], [253, 254, 255]], [[7, 8, 9], [10, 11, 12]]], dtype=np.uint8)),
    (0x09, ">b", np.array([-128, -1, 0, 127], dtype=np.int8)),
    (0x0B, ">h", np.array([[-300, 300], [1, -1]], dtype=np.int16)),
    (0x0C, ">i", np.array([-70000, 70000, 5], dtype=np.int32)),
    (0x0D, ">f", np.array([[0.5, -1.25]], dtype=np.float32)),
    (0x0E, ">d", np.array([np.pi, -np.e, 1e300], dtype=np.float64)),
])
def test_read_idx_every_type_plain_and_gzipped(tmp_path, code, fmt, values):
    raw = idx_bytes(values, code, fmt)
    (tmp_path / "a-idx").write_bytes(raw)
    (tmp_path / "b-idx.gz").write_bytes(gzip.compress(raw))
    for name in ("a-idx", "b-idx.gz"):
        got = read_idx(tmp_path / name)
        assert got.shape == values.shape and got.dtype.kind == values.dtype.kind
        assert got.dtype.itemsize == values.dtype.itemsize and got.dtype.isnative
        np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize("mangle, message", [
    (lambda raw: raw[:-1], "truncated or corrupt"),
    (lambda raw: raw + b"\x00", "truncated or corrupt"),
    (lambda raw: b"\x01" + raw[1:], "not an IDX file"),
    (lambda raw: raw[:2] + b"\x07" + raw[3:], "unknown IDX type code 0x07"),
    (lambda raw: raw[:6], "truncated IDX header"),
    (lambda raw: b"", "an empty file"),
])
def test_read_idx_refuses_corrupt_files_naming_them(tmp_path, mangle, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mangle(idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8), 0x08, ">B")))
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def write_fake_mnist(folder, n_train=60, n_test=20, side=4, gz=(), dotted=False):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array, ndim in (("images", images, 3), ("labels", labels, 1)):
            name = f"{part}-{kind}{'.' if dotted else '-'}idx{ndim}-ubyte"
            raw = idx_bytes(array, 0x08, ">B")
            if kind in gz:
                name, raw = name + ".gz", gzip.compress(raw)
            (folder / name).write_bytes(raw)
            files[(part, kind)] = array
    return files


@pytest.mark.parametrize("gz, dotted", [((), False), (("images",), False), (("images", "labels"), True)])
def test_load_mnist_scales_flattens_and_keeps_the_split(tmp_path, gz, dotted):
    files = write_fake_mnist(tmp_path / "mnist", gz=gz, dotted=dotted)
    data = load_mnist(tmp_path / "mnist")
    assert (data.n_train, data.n_test, data.n_features, data.n_classes) == (60, 20, 16, 10)
    np.testing.assert_array_equal(data.x_train, files[("train", "images")].reshape(60, 16) / 255.0)
    np.testing.assert_array_equal(data.y_test, files[("t10k", "labels")])
    assert data.x_train.dtype == np.float64 and data.y_train.dtype.kind == "i"
    sub = load_mnist(tmp_path / "mnist", max_train=30)
    assert sub.n_train == 30 and np.all(np.bincount(sub.y_train, minlength=10) == 3) and sub.n_test == 20


def test_missing_mnist_files_are_named_and_never_downloaded(tmp_path, capsys):
    write_fake_mnist(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte.*never downloads"):
        load_mnist(tmp_path / "partial")
    for folder, expected in ((tmp_path / "partial", "missing t10k-labels-idx1-ubyte"),
                             (tmp_path / "nowhere", "no such folder")):
        code = cli.main(["study", "--mnist", str(folder), "--out", str(tmp_path / "out"), "--no-progress"])
        _, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert expected in lines[0] and "never downloads" in lines[0]
    assert not (tmp_path / "out").exists()


def test_mismatched_mnist_files_are_refused(tmp_path):
    write_fake_mnist(tmp_path / "m")
    (tmp_path / "m" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8), 0x08, ">B"))
    with pytest.raises(DatasetError, match="do not match"):
        load_mnist(tmp_path / "m")


def test_stratified_subset_keeps_class_shares():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    keep = stratified_subset(y, 20, seed=3)
    assert len(keep) == 20 and len(set(keep)) == 20 and np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(np.bincount(y[keep]), [10, 6, 3, 1])
    np.testing.assert_array_equal(keep, stratified_subset(y, 20, seed=3))
    np.testing.assert_array_equal(stratified_subset(y, 500), np.arange(100))
    assert not np.array_equal(keep, stratified_subset(y, 20, seed=4))  # the seed picks the rows


def test_stratified_subset_is_scikit_learns_split():
    from sklearn.model_selection import train_test_split

    y = np.repeat(np.arange(3), [40, 40, 20])
    expected = train_test_split(np.arange(100), train_size=30, stratify=y, random_state=5)[0]
    np.testing.assert_array_equal(stratified_subset(y, 30, seed=5), np.sort(expected))


def test_stratified_subset_too_small_for_the_classes_is_a_dataset_error():
    with pytest.raises(DatasetError, match="stratified subset of 2 rows of 100"):
        stratified_subset(np.repeat(np.arange(4), 25), 2)
