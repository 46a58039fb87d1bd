"""save/load: one ``.npz`` without pickle, bit-identical round trip, atomic writes, and every
corruption of a model file refused with the path and the problem named."""

import json

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


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
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
                r"m\.npz' is not a readable model file .*ValueError"),
    "empty": (lambda p, net: p.write_bytes(b""), r"m\.npz' is not a readable model file .*EOFError"),
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


def test_files_without_a_checksum_load_with_a_warning(tmp_path):
    net, path = saved(tmp_path)
    rewrite(path, drop=("__checksum__",))
    with pytest.warns(UserWarning, match=r"m\.npz' has no '__checksum__' \(saved by an older scratchnet\)"):
        again = scratchnet.load(path)
    assert again.spec == net.spec


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
