"""The reference-op table learners read (``reference_ops.OPS``): every key is its op's own name, and the
signatures are the ones the docs promise — activations ``name(z) -> a (N, C)``, losses
``name(p, y, reduction='mean') -> float``, ``dense_forward(x, W, b) -> out (N, out)``.

``OPS`` is built once, at import; the table is rebuilt here (``_build_ops``) so the builder itself is
what is checked, and the published ``OPS`` must be that table."""

from __future__ import annotations

from scratchnet_reference.core.reference_ops import OPS, _build_ops

from scratchnet import registry


def test_the_built_table_keys_each_op_by_its_name_with_the_documented_signatures():
    ops = _build_ops()
    assert all(key == op.name for key, op in ops.items())
    for name in registry.ACTIVATIONS:
        assert ops[name].signature == f"{name}(z) -> a (N, C)"
    for name in registry.LOSSES:
        assert ops[name].signature == f"{name}(p, y, reduction='mean') -> float"
    assert ops["dense_forward"].signature == "dense_forward(x, W, b) -> out (N, out)"
    assert ops["dense_forward"].partner == "dense_backward" and ops["dense_backward"].partner == "dense_forward"
    assert ops == OPS
