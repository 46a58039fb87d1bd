"""Running the matrix: the deterministic conformance run behind ``scratchnet-conformance run``
and the matrix tests.

Each case is checked on a seeded batch with a two-hidden-layer, non-square network
(``5-7-6-4``: a transposed weight gradient cannot hide), its targets of the kind the loss
takes. Training configurations run in lockstep for 20 steps on a fixed classification case.
Undefined (output, loss) pairs are checked to be refused with a clear error. Everything is
seeded, so two runs on the same machine give the same records — the baseline gate relies on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from scratchnet import ModelSpec, registry

from .compare import compare_model
from .lockstep import lockstep
from .matrix import DTYPES, OPTIMIZER_CONFIGS, Case, cases, make_batch, refused_pairs, training_configs
from .protocol import Implementation
from .records import Record

__all__ = ["RunPlan", "check_case", "check_training", "check_refusal", "run_matrix", "target_kind",
           "CASE_SIZES", "TRAINING_STEPS"]

CASE_SIZES = (5, 7, 6, 4)
CASE_BATCH = 8
TRAINING_STEPS = 20


def target_kind(loss: str) -> str:
    """The natural target of a loss: class labels for cross-entropy/NLL, dense rows otherwise."""
    return "labels" if loss in ("cross_entropy", "nll") else "dense"


def check_case(impl: Implementation, case: Case, device: str = "cpu", seed: int = 0,
               fd: str = "on_failure") -> list[Record]:
    """Forward, loss and gradient records for one matrix case (every torch flavour)."""
    spec = case.spec(CASE_SIZES, seed=seed)
    x, y = make_batch(spec, CASE_BATCH, seed=seed, target=target_kind(case.loss))
    return compare_model(impl, spec, x, y, device=device, fd=fd)


def training_spec(dtype: str) -> ModelSpec:
    """The model every training configuration is run on: tanh → softmax + cross-entropy."""
    return ModelSpec(CASE_SIZES, hidden="tanh", output="softmax", loss="cross_entropy", dtype=dtype, seed=1)


def check_training(impl: Implementation, optimizer: str, gd_mode: str, dtype: str, device: str = "cpu",
                   steps: int = TRAINING_STEPS) -> list[Record]:
    """Lockstep records for one optimizer configuration × GD mode (13 samples: the mini-batch
    mode has a partial last batch)."""
    spec = training_spec(dtype)
    x, y = make_batch(spec, 13, seed=3)
    return lockstep(impl, spec, x, y, OPTIMIZER_CONFIGS[optimizer], gd_mode=gd_mode, steps=steps,
                    device=device, seed=3)


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
    """What a run covers (defaults: the whole matrix on CPU)."""

    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = DTYPES
    training: bool = True
    fd: str = "on_failure"
    case_filter: Callable[[Case], bool] = field(default=lambda case: True)

    def jobs(self) -> list[tuple[str, tuple]]:
        work: list[tuple[str, tuple]] = [("refusal", pair) for pair in refused_pairs()]
        for device in self.devices:
            work += [("case", (case, device)) for case in cases(self.dtypes) if self.case_filter(case)]
            if self.training:
                work += [("training", (opt, mode, dtype, device))
                         for opt, mode in training_configs() for dtype in self.dtypes]
        return work


def run_matrix(impl: Implementation, plan: RunPlan | None = None,
               progress: Callable[[Iterable], Iterable] = lambda jobs: jobs) -> tuple[list[Record], list[str]]:
    """Run every job of ``plan``; returns the records and the refusal messages checked."""
    plan = plan or RunPlan()
    records: list[Record] = []
    refusals: list[str] = []
    for kind, args in progress(plan.jobs()):
        if kind == "refusal":
            refusals.append(check_refusal(*args))
        elif kind == "case":
            case, device = args
            records += check_case(impl, case, device, fd=plan.fd)
        else:
            records += check_training(impl, *args)
    return records, refusals


# Every optimizer of the registry must have a training configuration.
_missing = set(registry.OPTIMIZERS) - {c["name"] for c in OPTIMIZER_CONFIGS.values()}
if _missing:  # pragma: no cover - guards registry edits
    raise RuntimeError(f"optimizers without a training configuration in reference.matrix: {sorted(_missing)}")
