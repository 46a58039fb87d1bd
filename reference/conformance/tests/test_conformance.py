"""The deterministic matrix of :mod:`scratchnet_reference.conformance.runner` for ``--impl``: one test per matrix case
and per training configuration, each skipped as not implemented where the implementation's
capabilities leave it out. Failures carry the diagnosis of every wrong parameter. Each test hands its
records to the run as those of its job, so a report folder (``--scratchnet-report-dir``) holds the
tables ``scratchnet-conformance run`` writes."""

from functools import partial

import pytest
from scratchnet_reference.conformance.runner import check_case, check_training, layered_training_spec, training_spec
from scratchnet_reference.core.matrix import DTYPES, cases, layered_training_configs, training_configs

CASES = list(cases())
TRAINING = [(opt, mode, dtype) for opt, mode in training_configs() for dtype in DTYPES]
LAYERED_TRAINING = [(opt, mode, dtype) for opt, mode in layered_training_configs() for dtype in DTYPES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_matches_torch(impl, case, device, conformance, capabilities):
    conformance.require_case(case)
    sizes = capabilities.architecture.case_sizes()  # declared, or found by the adapter check
    try:
        records = conformance.call(impl, partial(check_case, sizes=sizes), case, device, job=("case", (case, device)))
    except NotImplementedError as exc:  # batch norm / dropout need train(), eval(), dropout_masks()
        conformance.skip_not_implemented(str(exc))
    conformance.check(records, steer=False, job=("case", (case, device)))


@pytest.mark.parametrize("optimizer,gd_mode,dtype", TRAINING, ids=["-".join(t) for t in TRAINING])
def test_training_in_lockstep(impl, optimizer, gd_mode, dtype, device, conformance, capabilities):
    conformance.require_training(optimizer, dtype)
    records = conformance.call(impl, partial(check_training, spec=training_spec(dtype, capabilities)), optimizer,
                               gd_mode, dtype, device, job=("training", (optimizer, gd_mode, dtype, device)))
    assert sum(r.check == "training_step" for r in records) >= 20
    conformance.check(records, steer=False, job=("training", (optimizer, gd_mode, dtype, device)))


@pytest.mark.parametrize("optimizer,gd_mode,dtype", LAYERED_TRAINING, ids=["-".join(t) for t in LAYERED_TRAINING])
def test_layered_training_in_lockstep(impl, optimizer, gd_mode, dtype, device, conformance):
    """Batch norm and dropout after every hidden layer, trained in lockstep: torch replays the
    implementation's dropout masks, and the running statistics are compared with the parameters."""
    conformance.require_training(optimizer, dtype)
    try:
        records = conformance.call(impl, partial(check_training, spec=layered_training_spec(dtype)), optimizer,
                                   gd_mode, dtype, device, job=("training", (optimizer, gd_mode, dtype, device,
                                                                            "layered")))
    except NotImplementedError as exc:
        conformance.skip_not_implemented(str(exc))
    assert sum(r.check == "training_step" for r in records) >= 20
    assert any(r.param.endswith("running_var") for r in records if r.check == "final_params")
    conformance.check(records, steer=False, job=("training", (optimizer, gd_mode, dtype, device, "layered")))
