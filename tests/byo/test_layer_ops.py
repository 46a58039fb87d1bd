"""check_layer_ops: batch norm, dropout, convolution and max pooling in the course's (out, cache)
conventions against torch — the worked examples name exactly their planted pairs, the fixed
version passes, and every catalogued layer mistake is named when planted on the fixed version (these
are the layer entries' rows of the catalogue's test, ``tests/diagnosis/test_catalogue.py``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from scratchnet_reference.byo.layer_ops import check_layer_ops, layer_mistakes, load_layer_ops  # noqa: E402

import examples.layer_ops.batchnorm_bugs as batchnorm_bugs  # noqa: E402
import examples.layer_ops.batchnorm_bugs_2 as batchnorm_bugs_2  # noqa: E402
import examples.layer_ops.conv_bugs as conv_bugs  # noqa: E402
import examples.layer_ops.dropout_bugs as dropout_bugs  # noqa: E402
import examples.layer_ops.layers as fixed  # noqa: E402
import examples.layer_ops.pool_bugs as pool_bugs  # noqa: E402

EXAMPLES = 20


@pytest.mark.parametrize("module,keys", [
    (batchnorm_bugs, {"bn_backward_ignores_statistics", "bn_biased_running_var"}),
    (batchnorm_bugs_2, {"bn_eps_outside_sqrt", "bn_other_momentum"}),
    (dropout_bugs, {"dropout_not_scaled", "dropout_scaled_at_test", "dropout_backward_not_scaled"}),
    (conv_bugs, {"conv_flipped_kernel", "conv_dw_transposed"}),
    (pool_bugs, {"conv_stride_plus_one", "maxpool_grad_every_tie"}),
], ids=lambda v: v.__name__.rsplit(".", 1)[-1] if hasattr(v, "__name__") else None)
def test_worked_examples_name_exactly_their_planted_mistakes(module, keys):
    report = check_layer_ops(module, max_examples=EXAMPLES)
    assert report.keys == keys, str(report)
    assert all(f.right for f in report.findings), str(report)


def test_the_fixed_layers_pass():
    report = check_layer_ops(fixed, max_examples=EXAMPLES)
    assert report.ok and not report.missing, str(report)
    assert {r["op"] for r in report.rows} == set(load_layer_ops(fixed))
    assert all(r["examples"] == EXAMPLES for r in report.rows)


def _max_pool_backward_window(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += dout[:, :, i:i + 1, j:j + 1]
    return dx


def _conv_with(pad_change=0, stride_change=0):
    def conv(x, w, b, conv_param):
        return fixed.conv_forward_naive(x, w, b, {"stride": conv_param["stride"] + stride_change,
                                                  "pad": conv_param["pad"] + pad_change})
    return conv


def _bn_unbiased(x, gamma, beta, bn_param):
    out, cache = fixed.batchnorm_forward(x, gamma, beta, bn_param)
    if bn_param["mode"] == "train":
        xhat = (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + bn_param["eps"])
        out = gamma * xhat + beta
    return out, cache


def _bn_batch_stats_at_test(x, gamma, beta, bn_param):
    return fixed.batchnorm_forward(x, gamma, beta, {**bn_param, "mode": "train"}) if bn_param["mode"] == "test" \
        else fixed.batchnorm_forward(x, gamma, beta, bn_param)


def _dropout_keep(x, dropout_param):
    p = dropout_param["p"]
    if dropout_param["mode"] != "train":
        return x, None
    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < p) / p     # p kept
    return x * mask, mask


PLANTED = {
    "maxpool_grad_whole_window": {"max_pool_forward": fixed.max_pool_forward_naive,
                                  "max_pool_backward": _max_pool_backward_window},
    "conv_pad_plus_one": {"conv_forward": _conv_with(pad_change=1)},
    "conv_stride_minus_one": {"conv_forward": _conv_with(stride_change=-1)},
    "bn_unbiased_normalisation": {"batchnorm_forward": _bn_unbiased},
    "bn_batch_stats_at_test": {"batchnorm_forward": _bn_batch_stats_at_test},
    "dropout_p_as_keep": {"dropout_forward": _dropout_keep},
}


@pytest.mark.parametrize("key", sorted(PLANTED))
def test_each_remaining_mistake_is_named_when_planted(key):
    report = check_layer_ops(PLANTED[key], max_examples=EXAMPLES)
    assert key in report.keys, str(report)


def test_every_catalogued_layer_mistake_has_a_test():
    named_by_examples = {"bn_backward_ignores_statistics", "bn_biased_running_var", "bn_eps_outside_sqrt",
                         "bn_other_momentum", "dropout_not_scaled", "dropout_scaled_at_test",
                         "dropout_backward_not_scaled", "conv_flipped_kernel", "conv_dw_transposed",
                         "conv_stride_plus_one", "maxpool_grad_every_tie"}
    untested = {m.key for m in layer_mistakes()} - named_by_examples - set(PLANTED)
    assert untested == {"conv_pad_minus_one"}, untested   # planted below, with pad ≥ 1 drawn only sometimes


def test_pad_minus_one_is_named_where_the_padding_exists():
    report = check_layer_ops({"conv_forward": _conv_with(pad_change=-1)}, max_examples=EXAMPLES)
    # pad = 0 examples raise in np.pad (a negative width): their own finding; the rest are named
    assert {"conv_pad_minus_one", "raised"} <= report.keys, str(report)


def test_no_layer_functions_is_refused_with_the_names():
    with pytest.raises(ValueError, match="batchnorm_forward"):
        load_layer_ops({"relu": lambda z: z})


def test_a_result_of_the_wrong_form_is_named_not_raised():
    report = check_layer_ops({"max_pool_forward": fixed.max_pool_forward_naive,
                              "max_pool_backward": lambda dout, cache: (dout, "extra")}, max_examples=5)
    assert "raised" in report.keys and "not (dx) as arrays" in str(report), str(report)


# --------------------------------------------------------------------------------------------
# The layer ops in `scratchnet-conformance ops` (one command, one report)
# --------------------------------------------------------------------------------------------

def test_the_course_names_are_read_as_layer_ops():
    from scratchnet_reference.byo.learner_names import read_layer_name, read_name

    assert {n: read_layer_name(n) for n in ("conv_forward_naive", "max_pool_backward_naive", "convBackward",
                                            "batchnorm_backward_alt", "dropout_forward", "maxpool_forward_fast")} \
        == {"conv_forward_naive": "conv2d_forward", "max_pool_backward_naive": "maxpool2d_backward",
            "convBackward": "conv2d_backward", "batchnorm_backward_alt": "batchnorm_backward",
            "dropout_forward": "dropout_forward", "maxpool_forward_fast": "maxpool2d_forward"}
    assert read_layer_name("affine_forward") is None and read_layer_name("relu_backward") is None
    assert read_name("conv_forward_naive") is None   # a layer op is not read as a dense op too


def test_ops_checks_layer_and_dense_ops_in_one_report(capsys, monkeypatch):
    """The CS231n-style layers.py: affine and relu (dense ops) and batch norm, a naive conv and max
    pooling (layer ops) — each planted mistake named, in one report, the course's names stated."""
    from pathlib import Path

    from scratchnet_reference.cli import main

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    assert main(["ops", "--impl", "examples/ops/layers.py", "--max-examples", str(EXAMPLES)]) == 1
    out = capsys.readouterr().out
    assert "conv_forward_naive read as the layer op conv2d_forward(x, w, b, conv_param) -> (out, cache)" in out
    assert "3 root causes in examples/ops/layers.py" in out
    assert "maxpool2d_backward (dx): the gradient is sent to every tied maximum" in out
    for label in ("dense_forward ← affine_forward", "relu_backward", "batchnorm_backward", "conv2d_backward ← "
                  "conv_backward_naive", "maxpool2d_backward ← max_pool_backward_naive"):
        assert f"\n{label} " in out, label


def test_ops_passes_the_fixed_layers_and_names_the_buggy_ones():
    from scratchnet_reference.byo.ops import check_ops

    report = check_ops(fixed, max_examples=EXAMPLES)
    assert report.ok, report.render()
    assert {r["op"] for r in report.rows} == set(load_layer_ops(fixed))
    report = check_ops(pool_bugs, max_examples=EXAMPLES)
    assert {f.kind for f in report.findings} == {"conv_stride_plus_one", "maxpool_grad_every_tie"}, report.render()


def test_a_layer_backward_without_its_forward_is_refused():
    from scratchnet_reference.byo.ops import OpsError, load_ops

    with pytest.raises(OpsError, match=r"conv_backward_naive \(conv2d_backward\) is called with the cache of your "
                                       r"conv2d_forward"):
        load_ops({"conv_backward_naive": fixed.conv_backward_naive})


def test_the_own_name_wins_over_the_course_alternative():
    from scratchnet_reference.byo.ops import load_ops

    ops = load_ops({"batchnorm_forward": fixed.batchnorm_forward, "batchnorm_backward_alt": lambda d, c: None,
                    "batchnorm_backward": fixed.batchnorm_backward})
    assert ops.layers["batchnorm_backward"] is fixed.batchnorm_backward
    assert any("batchnorm_backward_alt would be read as the layer op batchnorm_backward too" in a
               for a in ops.assumptions), ops.assumptions
