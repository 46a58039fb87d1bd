"""``Capabilities.describe``: the report metadata's line — each key ``all`` when not narrowed, else its
names sorted and comma-separated, ``none`` when empty."""

from __future__ import annotations

from scratchnet_reference.core.capabilities import Capabilities


def test_a_narrowed_key_lists_its_names_sorted_and_comma_separated():
    caps = Capabilities.from_declaration({"hidden": ["tanh", "relu"], "losses": ["mse"], "outputs": []})
    parts = dict(part.split("=", 1) for part in caps.describe().split("; "))
    assert parts["hidden"] == "relu,tanh"
    assert parts["losses"] == "mse"
    assert parts["outputs"] == "none"
    assert parts["reductions"] == "all"
    assert Capabilities.everything().describe() == "everything"
