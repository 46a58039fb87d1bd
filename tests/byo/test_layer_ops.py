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
