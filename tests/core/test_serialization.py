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
