"""save/load: one ``.npz`` without pickle, bit-identical round trip, atomic writes, and every
corruption of a model file refused with the path and the problem named."""

import json
import re

import numpy as np
import pytest

import scratchnet
from scratchnet import ModelSpec, Network, serialization

from .helpers import pair_id, valid_pairs

SPECS = [
    ModelSpec((4, 7, 5, 3), hidden=["relu", {"name": "leaky_relu", "negative_slope": 0.3}], output="softmax",
              loss={"name": "cross_entropy", "label_smoothing": 0.1}, dtype="float32", seed=3),
    ModelSpec((2, 6, 1), hidden={"name": "gelu", "approximate": "tanh"}, output="sigmoid",
              loss="binary_cross_entropy", reduction="sum", init="xavier_normal", seed=8),
    ModelSpec((3, 2), loss={"name": "huber", "delta": 0.5}, init={"name": "normal", "std": 0.1}),
]


def trained(spec):
    net = Network(spec)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, spec.sizes[0]))
    y = rng.integers(0, spec.sizes[-1], 12) if net.loss_fn.per_sample else rng.uniform(size=(12, spec.sizes[-1]))
    net.fit(x, y, epochs=2, batch_size=5, optimizer={"name": "adam", "lr": 0.01})
    return net, x


# ASCII ids ("->" for describe()'s arrow): pytest escapes other characters in node ids, and an escaped id
# cannot be named back on a command line (mutmut names each test it runs)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe().replace("\u2192", "->"))
def test_round_trip_is_bit_identical(spec, tmp_path):
    net, x = trained(spec)
    path = scratchnet.save(net, tmp_path / "model.npz")
    again = scratchnet.load(path)
    assert again.spec == net.spec
    a, b = net.state_dict(), again.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name
    assert net.forward(x).tobytes() == again.forward(x).tobytes()


@pytest.mark.parametrize("pair", valid_pairs(), ids=pair_id)
def test_every_pair_round_trips(pair, tmp_path):
    net = Network(ModelSpec((2, 3, 3), hidden="tanh", output=pair[0], loss=pair[1], seed=4))
    net.save(tmp_path / "m.npz")
    again = Network.load(tmp_path / "m.npz")
    assert again.spec == net.spec and again.spec.fused == net.spec.fused


def test_archive_needs_no_pickle(tmp_path):
    net, _ = trained(SPECS[0])
    path = tmp_path / "m.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"__spec__", "__checksum__", *net.state_dict()}
        assert ModelSpec.from_dict(json.loads(str(archive["__spec__"]))) == net.spec
        for name, value in net.state_dict().items():
            assert archive[name].dtype == value.dtype and archive[name].tobytes() == value.tobytes()


def test_suffix_is_added_and_returned(tmp_path):
    net = Network(SPECS[2])
    path = serialization.save(net, tmp_path / "weights")
    assert path == tmp_path / "weights.npz" and path.exists()
    assert scratchnet.load(path).spec == net.spec
    assert scratchnet.load(tmp_path / "weights").spec == net.spec, "load applies the same suffix rule"


def test_save_leaves_no_temporary_file_and_replaces_atomically(tmp_path, monkeypatch):
    net = Network(SPECS[2])
    path = serialization.save(net, tmp_path / "m.npz")
    original = path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]

    def interrupted(fh, **arrays):
        fh.write(b"half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.np, "savez", interrupted)
    trained_net, _ = trained(SPECS[2])
    with pytest.raises(KeyboardInterrupt):
        serialization.save(trained_net, path)
    assert path.read_bytes() == original, "an interrupted save keeps the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved network at"):
        scratchnet.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="other.npz' is not a scratchnet model: it has no '__spec__' entry"):
        scratchnet.load(tmp_path / "other.npz")


# -- integrity: every corruption is a ModelFileError naming the file and the problem -------------

def saved(tmp_path, spec=SPECS[0]):
    net = Network(spec)
    return net, serialization.save(net, tmp_path / "m.npz")


def rewrite(path, *, recompute_checksum=False, drop=(), **changes):
    """Re-save ``path`` with entries changed or dropped (as someone editing the file would)."""
    with np.load(path, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files if name not in drop}
    entries.update(changes)
    if recompute_checksum:
        state = {k: v for k, v in entries.items() if not k.startswith("__")}
        entries["__checksum__"] = np.array(serialization.checksum(str(entries["__spec__"]), state))
    np.savez(path, **entries)


def edited_spec(path, old, new):
    with np.load(path, allow_pickle=False) as archive:
        return np.array(str(archive["__spec__"]).replace(old, new))


def flip_a_byte_inside(path, array):
    data = bytearray(path.read_bytes())
    at = bytes(data).find(array.tobytes())
    assert at > 0, "np.savez stores arrays uncompressed"
    data[at + array.nbytes // 2] ^= 0xFF
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "edited-spec": (lambda p, net: rewrite(p, __spec__=edited_spec(p, '"relu"', '"tanh"')),
                    r"m\.npz' fails its checksum: the spec or the weights changed after saving"),
    "edited-weight": (lambda p, net: rewrite(p, **{"layers.0.bias": net.state_dict()["layers.0.bias"] + 1}),
                      r"m\.npz' fails its checksum"),
    "float64-arrays-for-float32-spec": (
        lambda p, net: rewrite(p, recompute_checksum=True,
                               **{k: v.astype(np.float64) for k, v in net.state_dict().items()}),
        r"m\.npz': array 'layers\.0\.weight' has dtype float64, but the spec says float32 "
        r"\(refused rather than converted\)"),
    "truncated": (lambda p, net: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                  r"m\.npz' is not a readable model file \(truncated, corrupted or not an \.npz archive\): "
                  r"BadZipFile"),
    "garbage": (lambda p, net: p.write_bytes(b"this is not a zip archive at all" * 4),
                r"m\.npz' is not a model file \(\.npz archive\): it starts with b'this', not the zip signature"),
    "empty": (lambda p, net: p.write_bytes(b""), r"m\.npz' is not a model file \(\.npz archive\): it is empty"),
    "zip-header-then-garbage": (lambda p, net: p.write_bytes(b"PK\x03\x04" + b"\x00" * 40),
                                r"m\.npz' is not a readable model file \(truncated, corrupted or not an \.npz "
                                r"archive\): BadZipFile"),
    "bad-crc": (lambda p, net: flip_a_byte_inside(p, net.state_dict()["layers.1.weight"]),
                r"m\.npz' is not a readable model file .*BadZipFile: Bad CRC-32 for file 'layers\.1\.weight"),
    "missing-array": (lambda p, net: rewrite(p, drop=("layers.2.bias",)),
                      r"m\.npz' does not match its spec .*: missing arrays \['layers\.2\.bias'\], "
                      r"unexpected arrays \[\]"),
    "extra-array": (lambda p, net: rewrite(p, **{"layers.3.weight": np.zeros((2, 3), np.float32)}),
                    r"missing arrays \[\], unexpected arrays \['layers\.3\.weight'\]"),
    "wrong-shape": (lambda p, net: rewrite(p, **{"layers.0.weight": net.state_dict()["layers.0.weight"].T.copy()}),
                    r"m\.npz': array 'layers\.0\.weight' has shape \(4, 7\), but the spec .* needs \(7, 4\)"),
    "non-finite": (lambda p, net: rewrite(p, recompute_checksum=True,
                                          **{"layers.0.bias": np.full(7, np.nan, np.float32)}),
                   r"m\.npz': array 'layers\.0\.bias' holds NaN or infinity"),
    "invalid-spec": (lambda p, net: rewrite(p, __spec__=edited_spec(p, '"relu"', '"swish"')),
                     r"m\.npz' has an invalid spec: unknown activation 'swish'"),
    "spec-not-json": (lambda p, net: rewrite(p, __spec__=np.array("{oops")),
                      r"m\.npz' has an invalid spec: text is not valid JSON for a ModelSpec"),
    "spec-not-text": (lambda p, net: rewrite(p, __spec__=np.zeros(3)),
                      r"m\.npz': '__spec__' must be a text scalar, got dtype float64 shape \(3,\)"),
    "one-bare-array": (lambda p, net: p.write_bytes(_npy_bytes()),
                       r"m\.npz' is not a model file: it holds one bare array, not an \.npz archive"),
}


def _npy_bytes():
    import io

    buf = io.BytesIO()
    np.save(buf, np.ones(3))
    return buf.getvalue()


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_every_corruption_is_refused_naming_the_file(corruption, tmp_path):
    corrupt, message = CORRUPTIONS[corruption]
    net, path = saved(tmp_path)
    corrupt(path, net)
    with pytest.raises(scratchnet.ModelFileError, match=message) as info:
        scratchnet.load(path)
    assert isinstance(info.value, ValueError)
    with pytest.raises(scratchnet.ModelFileError):
        Network.load(path)


def test_a_file_without_a_checksum_is_refused_unless_trusted_explicitly(tmp_path):
    net, path = saved(tmp_path)
    rewrite(path, drop=("__checksum__",), __spec__=edited_spec(path, '"relu"', '"tanh"'))  # edited, sum removed
    with pytest.raises(scratchnet.ModelFileError, match=r"m\.npz' has no '__checksum__': its integrity cannot be "
                                                        r"checked .* trust_missing_checksum=True"):
        scratchnet.load(path)
    with pytest.raises(scratchnet.ModelFileError, match="has no '__checksum__'"):
        Network.load(path)
    with pytest.warns(UserWarning, match=r"m\.npz' has no '__checksum__' .*trust_missing_checksum=True"):
        again = scratchnet.load(path, trust_missing_checksum=True)
    assert again.spec.hidden[0]["name"] == "tanh"


def _deflated_model(path, spec_json, arrays, chunk=1 << 20):
    """An .npz written member by member with deflate, arrays streamed as zeros: a crafted file whose
    declared arrays are far larger than the file (never allocated while writing)."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array(spec_json), allow_pickle=False)
        archive.writestr("__spec__.npy", buf.getvalue())
        for name, (shape, dtype) in arrays.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                          "shape": shape})
            with archive.open(f"{name}.npy", "w", force_zip64=True) as fh:
                fh.write(header.getvalue())
                left = int(np.prod(shape)) * np.dtype(dtype).itemsize
                zeros = bytes(min(chunk, left))
                while left > 0:
                    fh.write(zeros[:left])
                    left -= len(zeros)
    return path


def test_headers_and_sizes_are_checked_before_any_array_is_read(tmp_path):
    import time
    import tracemalloc

    spec = ModelSpec((4096, 4096, 2), hidden="relu", dtype="float32")
    arrays = {name: (shape, "float32") for name, shape in spec.parameter_shapes().items()}
    path = _deflated_model(tmp_path / "bomb.npz", spec.to_json(), arrays)
    assert path.stat().st_size < 1 << 20 and 4096 * 4096 * 4 == 64 << 20  # a small file, 64 MiB declared
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(scratchnet.ModelFileError, match=r"bomb\.npz' declares 67,\d{3},\d{3} bytes of arrays in a "
                                                        r"[\d,]+-byte file .*refused unread"):
        scratchnet.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated while refusing"
    # a header that disagrees with the spec is refused from the header, before reading
    small = ModelSpec((3, 2), dtype="float32")
    wrong = {"layers.0.weight": ((200_000, 3), "float32"), "layers.0.bias": ((2,), "float32")}
    path = _deflated_model(tmp_path / "wrong.npz", small.to_json(), wrong)
    tracemalloc.start()
    with pytest.raises(scratchnet.ModelFileError, match=r"array 'layers\.0\.weight' has shape \(200000, 3\), but the "
                                                        r"spec .* needs \(2, 3\)"):
        scratchnet.load(path)
    assert tracemalloc.get_traced_memory()[1] < 1 << 20
    tracemalloc.stop()
    assert time.perf_counter() - start < 30


def test_a_member_that_does_not_hold_what_its_header_declares_is_refused(tmp_path):
    import zipfile

    net, path = saved(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    members["layers.0.bias.npy"] = members["layers.0.bias.npy"][:-4]  # one float32 short, CRCs recomputed
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(scratchnet.ModelFileError, match=r"array 'layers\.0\.bias' declares \(7,\) float32 but its "
                                                        r"member holds \d+ bytes: truncated or padded"):
        scratchnet.load(path)


def test_a_bare_npy_file_is_named_as_not_a_model_file(tmp_path):
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(scratchnet.ModelFileError, match=r"'.*single\.npy' is not a model file: model files are "
                                                        r"\.npz archives written by Network\.save"):
        scratchnet.load(tmp_path / "single.npy")


@pytest.mark.parametrize("thing", [None, "net", {"spec": 1}])
def test_saving_something_that_is_not_a_network_is_a_type_error(tmp_path, thing):
    with pytest.raises(TypeError, match=rf"network must be a scratchnet Network .*got {type(thing).__name__}"):
        scratchnet.save(thing, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_suffix_rule_is_shared_and_case_insensitive(tmp_path):
    net = Network(SPECS[2])
    assert net.save(tmp_path / "m") == tmp_path / "m.npz"
    assert scratchnet.load(tmp_path / "m").spec == net.spec
    assert net.save(tmp_path / "upper.NPZ") == tmp_path / "upper.NPZ"
    assert scratchnet.load(tmp_path / "upper.NPZ").spec == net.spec
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "upper.NPZ"]
    assert str(scratchnet.save(net, str(tmp_path / "s.v1"))).endswith("s.v1.npz")


def test_model_files_get_the_normal_mode(tmp_path):
    import os
    import stat

    from scratchnet.atomic import normal_file_mode

    old = os.umask(0o002)
    try:
        path = Network(SPECS[2]).save(tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664 == 0o666 & ~0o002
    assert normal_file_mode() == 0o666 & ~old


# -- the archive's layout, read from the headers (pinned where mutation testing found it unpinned) -------------

def _members(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_members(path, members, compression=None):
    import zipfile

    with zipfile.ZipFile(path, "w", compression=compression or zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array, version=None, allow_pickle=False):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version, allow_pickle=allow_pickle)
    return buf.getvalue()


def _array_of(data):
    import io

    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_format_versions_1_and_2_are_both_read(tmp_path, version):
    """np.save writes format 1.0, or 2.0 when a header outgrows 64 KiB: a file of 2.0 members loads the same."""
    net, path = saved(tmp_path)
    members = {name: _npy(_array_of(data), version=version) for name, data in _members(path).items()}
    assert all(data[6:8] == bytes(version) for data in members.values())
    _write_members(path, members)
    again = scratchnet.load(path)
    assert again.spec == net.spec
    assert all(again.state_dict()[k].tobytes() == v.tobytes() for k, v in net.state_dict().items())


def test_an_unknown_npy_format_version_is_named(tmp_path):
    """Format 3.0 (UTF-8 headers) is not read: the member and the version are named."""
    _, path = saved(tmp_path)
    members = _members(path)
    members["layers.0.bias.npy"] = _npy(_array_of(members["layers.0.bias.npy"]), version=(3, 0))
    _write_members(path, members)
    with pytest.raises(scratchnet.ModelFileError, match=r"m\.npz' is not a readable model file .*: ValueError: member "
                                                        r"'layers\.0\.bias\.npy': unsupported \.npy format version "
                                                        r"\(3, 0\)$"):
        scratchnet.load(path)


def test_a_member_holding_python_objects_is_refused_from_its_header(tmp_path):
    _, path = saved(tmp_path)
    members = _members(path)
    members["layers.0.bias.npy"] = _npy(np.array([1.0, "x"], dtype=object), allow_pickle=True)
    _write_members(path, members)
    with pytest.raises(scratchnet.ModelFileError, match=r"m\.npz': array 'layers\.0\.bias' holds Python objects "
                                                        r"\(pickled data\): refused$"):
        scratchnet.load(path)


def test_members_are_named_as_np_load_names_them(tmp_path):
    """``.npy`` is dropped from a member's name where it is there, and a name without it is kept whole."""
    net, path = saved(tmp_path)
    _write_members(path, {name.removesuffix(".npy"): data for name, data in _members(path).items()})
    assert all(not name.endswith(".npy") for name in _members(path))
    again = scratchnet.load(path)
    assert again.spec == net.spec
    assert all(again.state_dict()[k].tobytes() == v.tobytes() for k, v in net.state_dict().items())


@pytest.mark.parametrize("shape", [(2**64,), (2**32, 2**32)], ids=["one-dim-2**64", "product-2**64"])
def test_a_shape_beyond_int64_is_a_size_mismatch_not_an_overflow(tmp_path, shape):
    """The declared size is computed exactly: 2**64 elements (one dimension, or a product that int64 would wrap
    to 0) is refused as the header/member mismatch it is, naming the declared shape."""
    import io

    _, path = saved(tmp_path)
    members = _members(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    members["layers.0.bias.npy"] = header.getvalue()
    _write_members(path, members)
    with pytest.raises(scratchnet.ModelFileError, match=rf"array 'layers\.0\.bias' declares {re.escape(str(shape))} "
                                                        r"float32 but its member holds 128 bytes: truncated or padded"):
        scratchnet.load(path)


@pytest.mark.parametrize(("chars", "message"), [
    (256, r"m\.npz' fails its checksum"),     # the longest text read: then compared with the arrays
    (257, r"m\.npz': '__checksum__' must be a text scalar, got dtype <U257 shape \(\)$"),   # refused from its header
], ids=["256-read", "257-refused"])
def test_the_checksum_text_is_read_up_to_256_characters(tmp_path, chars, message):
    _, path = saved(tmp_path)
    rewrite(path, __checksum__=np.array("0" * chars))
    with pytest.raises(scratchnet.ModelFileError, match=message):
        scratchnet.load(path)


def test_a_text_entry_that_is_not_a_scalar_is_refused_before_it_is_read(tmp_path):
    """A ``__checksum__`` declaring 16 Mi one-character strings (64 MiB, deflated to a small file) is refused
    from its header: nothing near its size is allocated."""
    import tracemalloc

    spec = ModelSpec((3, 2), dtype="float32")
    path = _deflated_model(tmp_path / "texts.npz", spec.to_json(), {"__checksum__": ((16 << 20,), "<U1")})
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(scratchnet.ModelFileError, match=r"texts\.npz': '__checksum__' must be a text scalar, got "
                                                            r"dtype <U1 shape \(16777216,\)$"):
            scratchnet.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated while refusing"


def _padded_npy_header(shape, dtype, pad):
    """A format 1.0 header with ``pad`` extra spaces (numpy reads any padding): the member's size, byte by byte."""
    text = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}) + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def _model_declaring(spec, pad):
    """A valid model file of zero weights, deflated, whose first array's header carries ``pad`` spaces:
    ``(file bytes, declared bytes of arrays)``."""
    import io
    import zipfile

    state = {name: np.zeros(shape, spec.dtype) for name, shape in spec.state_shapes().items()}
    spec_json = spec.to_json()
    buf = io.BytesIO()
    declared = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__spec__.npy", _npy(np.array(spec_json)))
        archive.writestr("__checksum__.npy", _npy(np.array(serialization.checksum(spec_json, state))))
        for i, (name, value) in enumerate(state.items()):
            data = _padded_npy_header(value.shape, value.dtype, pad if i == 0 else 0) + value.tobytes()
            archive.writestr(f"{name}.npy", data)
            declared += len(data)
    return buf.getvalue(), declared


def test_arrays_may_declare_16_times_the_file_size_plus_1_mib_and_not_one_byte_more(tmp_path):
    """The compression budget, inclusive: arrays declaring exactly ``16 × file size + 2**20`` bytes load, one
    byte more is refused unread. Files of deflated zeros, sized to the byte: the hidden width first (24 bytes a
    unit), then a header's padding (1 byte a space; the deflated file grows far more slowly)."""
    def over_budget(width, pad):
        data, declared = _model_declaring(ModelSpec((1, width, 1), hidden="relu", seed=0), pad)
        return data, declared - (16 * len(data) + (1 << 20))

    width = 44_000
    for _ in range(20):
        over = over_budget(width, 0)[1]
        if -500 < over <= 0:
            break
        width -= over // 24 + (1 if over > 0 else 0)
    found = {}
    for pad in range(max(0, -over - 100), max(0, -over) + 400):
        data, over_by = over_budget(width, pad)
        if over_by in (0, 1):
            found.setdefault(over_by, data)
        if len(found) == 2:
            break
    assert set(found) == {0, 1}, f"no padding of a width-{width} model declares the budget exactly"
    (tmp_path / "at.npz").write_bytes(found[0])
    (tmp_path / "over.npz").write_bytes(found[1])
    assert not scratchnet.load(tmp_path / "at.npz").state_dict()["layers.0.weight"].any()
    size = (tmp_path / "over.npz").stat().st_size
    with pytest.raises(scratchnet.ModelFileError, match=rf"over\.npz' declares {16 * size + (1 << 20) + 1:,} bytes "
                                                        rf"of arrays in a {size:,}-byte file \(more than ×16 "
                                                        r"compression\): refused unread"):
        scratchnet.load(tmp_path / "over.npz")
