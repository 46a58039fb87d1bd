"""Causes read from records alone (no implementation at hand): a constant factor from cosine and
norm ratio, with the batch size from the forward record (1 when there is none), and the words for
a learner's code that wrote into its inputs."""

from __future__ import annotations

from types import SimpleNamespace

from scratchnet_reference.diagnosis.network import diagnose, inputs_cause


def gradient(norm_ratio, cosine=1.0):
    return SimpleNamespace(status="fail", check="gradient", param="layers.0.weight", shape="(5, 4)", sizes="4-5",
                           loss="mse", reduction="sum", cosine=cosine, norm_ratio=norm_ratio)


def test_a_factor_without_a_forward_record_takes_batch_size_one_and_says_only_the_number():
    """4 is N·2 for a batch of 2 but no product of 1, C = 5 and 2: without a forward record the
    batch size is 1, so the factor is stated bare, with nothing appended."""
    [cause] = diagnose([gradient(4.0)])
    assert cause.what == "off by a constant factor: yours = 4 × torch's"
    assert cause.factor == 4.0
    forward = SimpleNamespace(status="pass", check="forward", param="", shape="(2, 5)", sizes="4-5", loss="mse",
                              reduction="sum", cosine=float("nan"), norm_ratio=float("nan"))
    [named] = diagnose([forward, gradient(4.0)])
    assert named.what.startswith("off by a constant factor: yours = 4 × torch's = N · 2 (N = 2 the batch size")


def test_code_writing_into_its_inputs_names_each_call_without_the_amount():
    record = SimpleNamespace(note="forward wrote into x (largest change 0.5); loss_and_grads wrote into y "
                                  "(largest change 1)")
    cause = inputs_cause(record)
    assert cause.what == "your forward wrote into x; your loss_and_grads wrote into y"
    assert cause.kind == "input_modified"
