"""Running the matrix: the deterministic conformance run behind ``scratchnet-conformance run``
and the matrix tests.

Each case is checked with a two-hidden-layer, non-square network (``5-7-6-4``: a transposed
weight gradient cannot hide), or the architecture the implementation declares or was found to
build (:mod:`~scratchnet_reference.core.architecture`), on three batches — seeded random, exact
kinks, large logits (:mod:`~scratchnet_reference.core.batches`) — its targets of the kind the loss
takes. Training configurations run in lockstep for 20 steps on a fixed classification case.
Undefined (output, loss) pairs are checked to be refused with a clear error. Everything is
seeded, so two runs on the same machine give the same records — the baseline gate relies on it.

An implementation that declares :class:`~scratchnet_reference.core.adapter.Capabilities` narrows the plan:
:meth:`RunPlan.jobs` keeps what it implements, :meth:`RunPlan.not_implemented` lists the rest
with the reason, and the training checks train the closest model it implements. Failing
records come back with a :mod:`~scratchnet_reference.diagnosis` of what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scratchnet import ModelSpec, registry

from ..core.batches import problems as batch_problems
from ..core.boundary import INPUTS_CHECK, second_call_ratio
from ..core.capabilities import Capabilities, capabilities_of
from ..core.compare import compare_model, prepare_batch
from ..core.fit_lockstep import fit_lockstep
from ..core.lockstep import GD_MODES, lockstep
from ..core.matrix import (
    AFTER,
    DTYPES,
    OPTIMIZER_CONFIGS,
    TRAINING_AFTER,
    Case,
    cases,
    layered_training_configs,
    make_batch,
    refused_pairs,
    training_configs,
)
from ..core.protocol import Implementation, ScratchnetImplementation, initial_state
from ..core.records import Record

__all__ = ["RunPlan", "check_case", "check_training", "check_fit", "FIT_EPOCHS",
           "check_refusal", "run_job", "run_matrix", "target_kind",
           "case_problem", "case_sizes", "case_state", "training_spec", "layered_training_spec", "CASE_SIZES",
           "TRAINING_STEPS"]

CASE_SIZES = (5, 7, 6, 4)
CASE_BATCH = 8
TRAINING_STEPS = 20
FIT_EPOCHS = 3


def target_kind(loss: str) -> str:
    """The natural target of a loss: class labels for one that takes class indices
    (:func:`scratchnet.registry.takes_class_indices`), dense rows otherwise."""
    return "labels" if registry.takes_class_indices(loss) else "dense"


def case_problem(case: Case, seed: int = 0,
                 sizes: tuple[int, ...] = CASE_SIZES) -> tuple[ModelSpec, np.ndarray, np.ndarray]:
    """The spec and seeded batch one matrix case is checked on (``sizes``: the implementation's
    architecture, :meth:`Capabilities.architecture`)."""
    spec = case.spec(tuple(sizes), seed=seed)
    x, y = make_batch(spec, CASE_BATCH, seed=seed, target=target_kind(case.loss))
    return spec, x, y


def case_state(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """The weights a case starts from: the spec's initial ones, with batch norm's γ, β and running
    statistics drawn away from their initial 1, 0, 0, 1 (γ ~ U(0.5, 1.5), β ~ N(0, 0.1²), running
    mean ~ N(0, 0.5²), running variance ~ U(0.5, 2)), so that a γ/β swapped, a missing scale, or an
    evaluation that ignores the running statistics shows."""
    state = initial_state(spec)
    rng = np.random.default_rng([seed, 24])
    draw = {"weight": lambda n: rng.uniform(0.5, 1.5, n), "bias": lambda n: rng.normal(0.0, 0.1, n),
            "running_mean": lambda n: rng.normal(0.0, 0.5, n), "running_var": lambda n: rng.uniform(0.5, 2.0, n)}
    for name in state:
        if name.startswith("batch_norms."):
            state[name] = draw[name.rsplit(".", 1)[1]](state[name].shape).astype(spec.dtype)
    return state


def check_case(impl: Implementation, case: Case, device: str = "cpu", seed: int = 0,
               fd: str = "on_failure", diagnose: bool = True, sizes: tuple[int, ...] | None = None) -> list[Record]:
    """Forward, loss, gradient and intact-inputs records for one matrix case (every torch flavour, in
    the case's mode),
    on each of its batches (:mod:`~scratchnet_reference.core.batches`: random, exact kinks, large
    logits); failing records carry a diagnosis (``diagnose=False``: not computed). ``sizes``:
    default the architecture the implementation declares, else :data:`CASE_SIZES`."""
    sizes = sizes or case_sizes(impl)
    spec, x, y = case_problem(case, seed, sizes)
    records: list[Record] = []
    first: dict[tuple[str, str, str], str] = {}  # the random batch's failing records -> their diagnosis
    for batch, spec_b, state, xb, yb in batch_problems(spec, x, y, case_state(spec, seed)):
        found = compare_model(impl, spec_b, xb, yb, device=device, fd=fd, state=state, batch=batch,
                              mode=case.mode)
        compared = [r for r in found if r.check != INPUTS_CHECK]  # inputs: named in its note
        failed = [(r.flavour, r.check, r.param) for r in compared if r.status == "fail"]
        if diagnose and failed and not case.after:  # batch norm / dropout: the op-level checks isolate
            if first and all(key in first for key in failed):
                # the same parameters already fail on the random batch: the same causes, not new ones
                compared = [replace(r, diagnosis=first[r.flavour, r.check, r.param]) if r.status == "fail" else r
                            for r in compared]
            else:
                from ..diagnosis.network import Problem, annotate

                annotate(compared, impl, Problem(spec_b, state, xb, yb, device))  # replaces in the list
        if batch == "random":
            first = {(r.flavour, r.check, r.param): r.diagnosis for r in compared if r.status == "fail"}
        intact = [r for r in found if r.check == INPUTS_CHECK]
        if diagnose:
            from ..diagnosis.network import annotate

            annotate(intact)  # a call that wrote into its inputs is named from its record
        records += compared + intact
    return records


def case_sizes(impl: Implementation) -> tuple[int, ...]:
    """The sizes ``impl``'s models are built with: its declared architecture, else :data:`CASE_SIZES`
    (one found by the adapter check travels in the capabilities a plan or the plugin holds)."""
    try:
        return capabilities_of(getattr(impl, "inner", impl)).architecture.case_sizes()
    except Exception:  # noqa: BLE001 - a malformed declaration is the adapter check's to report
        return CASE_SIZES


def layered_training_spec(dtype: str) -> ModelSpec:
    """The model the layered training configurations train: :func:`training_spec`'s, with every
    layer of :data:`~scratchnet_reference.core.matrix.TRAINING_AFTER` after each hidden layer."""
    return ModelSpec(CASE_SIZES, hidden="tanh", output="softmax", loss="cross_entropy", dtype=dtype, seed=1,
                     after_hidden=list(AFTER[TRAINING_AFTER]))


def training_spec(dtype: str, capabilities: Capabilities | None = None) -> ModelSpec:
    """The model every training configuration is run on: tanh → softmax + cross-entropy, or the
    closest model ``capabilities`` implement (``NotImplementedError`` when there is none)."""
    if capabilities is None or capabilities.is_everything:
        return ModelSpec(CASE_SIZES, hidden="tanh", output="softmax", loss="cross_entropy", dtype=dtype, seed=1)
    model = capabilities.training_model(dtype)
    if model is None:
        raise NotImplementedError(capabilities.missing_for_training("sgd", dtype)
                                  or f"nothing to train in {dtype}")
    hidden, output, loss, reduction = model
    return ModelSpec(capabilities.architecture.case_sizes(), hidden=hidden, output=output, loss=loss,
                     reduction=reduction, dtype=dtype, seed=1)


def check_training(impl: Implementation, optimizer: str, gd_mode: str, dtype: str, device: str = "cpu",
                   steps: int = TRAINING_STEPS, spec: ModelSpec | None = None) -> list[Record]:
    """Lockstep records for one optimizer configuration × GD mode (13 samples: the mini-batch
    mode has a partial last batch), on ``spec`` (default :func:`training_spec` for the
    implementation's declared capabilities). Failing records carry a diagnosis."""
    spec = spec or training_spec(dtype, capabilities_of(impl))
    x, y = make_batch(spec, 13, seed=3, target=target_kind(spec.loss["name"]))
    records = lockstep(impl, spec, x, y, OPTIMIZER_CONFIGS[optimizer], gd_mode=gd_mode, steps=steps,
                       device=device, seed=3)
    if any(r.status == "fail" for r in records):
        from ..diagnosis.network import annotate_training

        try:  # are the gradients of the trained model right? (then the update is to blame)
            grads = compare_model(impl, spec, x, y, device=device, fd="never")
            gradients_ok = not any(r.status == "fail" and r.check != INPUTS_CHECK for r in grads)
        except Exception:  # noqa: BLE001 - the training records already say what failed
            gradients_ok = None
        try:  # or do its gradients depend on the calls before (+= instead of =)?
            xs, target = prepare_batch(spec, x, y)
            repeat = second_call_ratio(impl, spec, initial_state(spec), xs, target)
        except Exception:  # noqa: BLE001 - as above
            repeat = None
        annotate_training(records, gradients_ok, repeat)
    return records


def check_fit(impl: Implementation, optimizer: str, gd_mode: str, dtype: str, device: str = "cpu",
              epochs: int = FIT_EPOCHS) -> list[Record]:
    """``Network.fit`` in lockstep with torch (:mod:`~scratchnet_reference.core.fit_lockstep`): the
    training problem of :func:`check_training` (13 samples: mini-batches of 5, 5, 3), ``epochs``
    epochs, shuffled with seed 3. ``fit`` is scratchnet's own API, not the adapter protocol's:
    another implementation raises ``NotImplementedError``."""
    impl = getattr(impl, "inner", impl)  # the pytest plugin's guard wraps it
    if not isinstance(impl, ScratchnetImplementation):
        raise NotImplementedError("Network.fit is scratchnet's API; the adapter protocol has no fit")
    spec = training_spec(dtype)
    x, y = make_batch(spec, 13, seed=3, target=target_kind(spec.loss["name"]))
    return fit_lockstep(spec, x, y, OPTIMIZER_CONFIGS[optimizer], batch_size=GD_MODES[gd_mode](len(x)),
                        epochs=epochs, seed=3, gd_mode=gd_mode, device=device, network_factory=impl.network_factory)


def check_refusal(output: str, loss: str) -> str:
    """The error message an undefined pair is refused with (``AssertionError`` if accepted)."""
    try:
        ModelSpec((3, 2), output=output, loss=loss)
    except ValueError as exc:
        message = str(exc)
        if output not in message or loss not in message:
            raise AssertionError(f"refusal of {output}+{loss} does not name the pair: {message}") from None
        return message
    raise AssertionError(f"{output} + {loss} is undefined but was accepted")


@dataclass
class RunPlan:
    """What a run covers (defaults: the whole matrix on CPU), narrowed to ``capabilities``
    (``None``: everything)."""

    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = DTYPES
    training: bool = True
    fd: str = "on_failure"
    case_filter: Callable[[Case], bool] = field(default=lambda case: True)
    capabilities: Capabilities | None = None

    def all_jobs(self) -> list[tuple[str, tuple]]:
        """Every job of the plan, implemented or not."""
        work: list[tuple[str, tuple]] = [("refusal", pair) for pair in refused_pairs()]
        for device in self.devices:
            work += [("case", (case, device)) for case in cases(self.dtypes) if self.case_filter(case)]
            if self.training:
                work += [("training", (opt, mode, dtype, device))
                         for opt, mode in training_configs() for dtype in self.dtypes]
                # with batch norm and dropout: a fifth argument names the layers
                work += [("training", (opt, mode, dtype, device, "layered"))
                         for opt, mode in layered_training_configs() for dtype in self.dtypes]
                if self.capabilities is None:  # Network.fit: scratchnet's own API (see check_fit)
                    work += [("fit", (opt, mode, dtype, device))
                             for opt, mode in training_configs() for dtype in self.dtypes]
        return work

    def missing(self, job: tuple[str, tuple]) -> str:
        """What ``job`` needs that the implementation does not declare (``""``: nothing)."""
        caps = self.capabilities
        if caps is None:
            return ""
        kind, args = job
        if kind == "case":
            return caps.missing_for_case(args[0])
        if kind == "training":
            layered = caps.missing_layers(TRAINING_AFTER) if len(args) > 4 else ""
            return ", ".join(p for p in (caps.missing_for_training(args[0], args[2]), layered) if p)
        return ""

    def jobs(self) -> list[tuple[str, tuple]]:
        """The jobs to run: :meth:`all_jobs` the implementation implements."""
        return [job for job in self.all_jobs() if not self.missing(job)]

    def not_implemented(self) -> list[tuple[tuple[str, tuple], str]]:
        """``(job, what is missing)`` for every job left out because it is not implemented."""
        return [(job, reason) for job in self.all_jobs() if (reason := self.missing(job))]

    @property
    def sizes(self) -> tuple[int, ...]:
        """The sizes every matrix case is built with (the implementation's architecture)."""
        return CASE_SIZES if self.capabilities is None else self.capabilities.architecture.case_sizes()

    def training_spec(self, dtype: str) -> ModelSpec:
        """The model the training jobs train (see :func:`training_spec`)."""
        return training_spec(dtype, self.capabilities)


def run_job(impl: Implementation, plan: RunPlan, job: tuple[str, tuple]) -> tuple[list[Record], str | None]:
    """One job of :meth:`RunPlan.jobs`: its records, and the refusal message for a refusal job."""
    kind, args = job
    if kind == "refusal":
        return [], check_refusal(*args)
    if kind == "case":
        case, device = args
        return check_case(impl, case, device, fd=plan.fd, sizes=plan.sizes), None
    if kind == "fit":
        return check_fit(impl, *args), None
    if len(args) > 4:  # ("training", (opt, mode, dtype, device, "layered"))
        return check_training(impl, *args[:4], spec=layered_training_spec(args[2])), None
    return check_training(impl, *args, spec=plan.training_spec(args[2])), None


def run_matrix(impl: Implementation, plan: RunPlan | None = None,
               progress: Callable[[Iterable], Iterable] = lambda jobs: jobs,
               not_implemented: list[tuple[Any, str]] | None = None,
               jobs: list[tuple[str, tuple]] | None = None,
               on_error: Callable[[tuple[str, tuple], Exception], list[Record]] | None = None,
               run_one: Callable[..., tuple[list[Record], str | None]] | None = None,
               ) -> tuple[list[Record], list[str]]:
    """Run ``jobs`` (default: every job of ``plan``); returns the records and the refusal
    messages checked. Jobs the implementation does not implement — left out by the plan (when
    ``jobs`` is not given), or raising ``NotImplementedError`` — are appended to
    ``not_implemented`` as ``(job, reason)``
    (without that list they raise). With ``on_error``, any other exception of a job becomes the
    records it returns and the run goes on; without it, the exception propagates. ``run_one(impl, plan, job)``
    runs one job (default :func:`run_job`; :class:`~.isolated_jobs.IsolatedJobs` runs it in a worker)."""
    plan = plan or RunPlan()
    records: list[Record] = []
    refusals: list[str] = []
    if not_implemented is not None and jobs is None:  # a caller passing jobs has chosen them
        not_implemented += plan.not_implemented()
    for job in progress(plan.jobs() if jobs is None else jobs):
        try:
            job_records, refusal = (run_one or run_job)(impl, plan, job)
            records += job_records
            if refusal is not None:
                refusals.append(refusal)
        except NotImplementedError as exc:
            if not_implemented is None:
                raise
            reason = " ".join(str(exc).split())
            not_implemented.append((job, f"raised NotImplementedError: {reason}"[:200] if reason else
                                    "raised NotImplementedError"))
        except Exception as exc:
            if on_error is None:
                raise
            records += on_error(job, exc)
    return records, refusals
