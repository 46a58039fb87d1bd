"""Bring your own network: the adapter an outside implementation writes, the capabilities it
declares, and the checks that say exactly what an adapter is missing.

The smallest adapter
--------------------
The harness talks to an implementation only through two small objects (see
``examples/adapter_template.py`` for a commented copy to start from)::

    class MyImplementation:
        name = "my-net"                                   # a label for the reports
        capabilities = {                                  # optional: what it implements
            "activations": ["sigmoid", "relu", "softmax"],    # hidden and output layers
            "losses": ["cross_entropy", "mse"],
            "dtypes": ["float64"],
            "optimizers": ["sgd"], "optimizer_options": [],   # plain SGD: lr only
            "architectures": [(784, 30, 10)],             # fixed sizes; [1]: one hidden layer
        }

        def build(self, spec, state):                     # a scratchnet.ModelSpec and its weights
            return MyModel(spec, state)

    class MyModel:
        def forward(self, x): ...                         # (N, inputs) -> (N, C) output activations
        def loss_and_grads(self, x, y): ...               # -> (loss, {"layers.0.weight": (out, in), ...})
        def load_state_dict(self, state): ...             # new weights (the finite-difference check)
        # optional, for the lockstep training checks:
        def state_dict(self): ...                         # {name: array} like the state given to build
        def configure_optimizer(self, spec): ...          # {"name": "sgd", "lr": 0.1, ...} (torch.optim names)
        def step(self): ...                               # one update from the last loss_and_grads

Batches are rows, weights are stored like ``torch.nn.Linear`` (``layers.{k}.weight`` is
``(out, in)``, ``layers.{k}.bias`` is ``(out,)``). A network written with column vectors, one
sample at a time, adapts by transposing and looping over the rows in ``loss_and_grads``.
Targets ``y`` are class labels ``(N,)`` (ints) for cross-entropy/NLL, else float ``(N, C)`` rows.

Exposing the ops (optional: diagnosis by substitution)
------------------------------------------------------
An implementation whose network is made of functions — an activation's ``relu(z)`` and
``relu_backward(z, a, g)``, a loss's ``mse(p, y)`` and ``mse_grad(p, y)``, the fused
``softmax_cross_entropy_grad(z, y)``, ``dense_forward(x, W, b)``/``dense_backward(x, W, b, g)``
(the names and signatures of :mod:`scratchnet_reference.core.reference_ops`) — may expose them::

    class MyImplementation:
        ops = {"relu": relu, "relu_backward": relu_backward, "mse": mse, "mse_grad": mse_grad}

        def build(self, spec, state, ops=None):           # ops: {name: function} to use instead
            return MyModel(spec, state, {**self.ops, **(ops or {})})

When a check fails, the diagnosis swaps each of them for torch's (loss ops get the spec's
``reduction=`` keyword) and reports the ones whose swap makes the failure vanish, each its own root
cause. :func:`validate_implementation` refuses unknown op names (with the closest known ones), ops
that are not callable, and a ``build`` that does not take ``ops=``.

Capabilities
------------
``capabilities`` is an attribute or a zero-argument method giving a mapping (or a
:class:`Capabilities`). Every key is optional, and a key left out means "everything the
registry has":

=====================  ========================================================================
``activations``        names usable in hidden and output layers
``hidden``             narrower set for hidden layers (default: ``activations``)
``outputs``            narrower set for the output layer (default: ``activations``)
``losses``             loss names
``reductions``         ``"mean"``, ``"sum"``
``dtypes``             ``"float64"``, ``"float32"``
``optimizers``         optimizer names (``"sgd"``, ``"adam"``, ``"adamw"``); ``[]``: no training
``optimizer_options``  torch.optim keywords understood besides ``lr`` (``momentum``, ``nesterov``,
                       ``weight_decay``, ``amsgrad``, …); ``[]``: plain updates only
``hyperparameters``    activation/loss parameters honoured when not at their default
                       (``negative_slope``, ``label_smoothing``, …); ``[]``: defaults only
``architectures``      what ``build`` accepts: fixed sizes ``(784, 30, 10)``, a number of hidden
                       layers ``1``, or ``"any"``; the first is what every check builds
                       (:mod:`~scratchnet_reference.core.architecture`). Left out: the adapter
                       check tries the default two hidden layers, then one, and says which
``layers``             layers after hidden layers (``"batch_norm"``, ``"dropout"``; the model then
                       needs ``train()``, ``eval()`` and ``dropout_masks()``, see
                       :mod:`~scratchnet_reference.core.protocol`). Unlike the other keys, left out
                       means **none** (they came after adapters were written); an implementation
                       that declares nothing at all is asked for them and skips them at run time
=====================  ========================================================================

The matrix narrows to what is declared; the rest is reported as *not implemented* — counted
and listed, never failed. ``build`` (or ``configure_optimizer``) raising ``NotImplementedError``
for a particular spec does the same at run time.

:func:`validate_implementation` checks the surface before anything runs and names every
problem (``MyNet.build missing``, ``grads keyed ['W1', ...], expected ['layers.0.weight', ...]``,
…); :func:`load_implementation` resolves ``--impl`` and validates. A gradient of the wrong shape
(a bias summed over no axis, a transposed weight) is not the adapter's problem but the network's:
it is accepted here, and its comparison fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from scratchnet import ModelSpec, registry
from scratchnet.spec import REDUCTIONS  # the names a spec accepts (not the loss code)

from .architecture import ANY, DEFAULT_DEPTH, Architecture
from .capabilities import (
    CAPABILITY_KEYS,
    HIDDEN_PREFERENCE,
    PAIR_PREFERENCE,
    AdapterError,
    Capabilities,
    capabilities_of,
    describe_capabilities,
    owner_of,
)
from .matrix import DTYPES
from .protocol import initial_state

__all__ = ["AdapterError", "Capabilities", "CAPABILITY_KEYS", "capabilities_of", "validate_implementation",
           "load_implementation", "describe_capabilities", "REQUIRED_MODEL_METHODS", "TRAINING_MODEL_METHODS"]

#: What every model must have, with the signature shown in error messages.
REQUIRED_MODEL_METHODS = {
    "forward": "forward(x) -> (N, C) array",
    "loss_and_grads": "loss_and_grads(x, y) -> (loss, {name: gradient})",
    "load_state_dict": "load_state_dict(state)",
}
#: What the lockstep training checks need in addition.
TRAINING_MODEL_METHODS = {
    "state_dict": "state_dict() -> {name: array}",
    "configure_optimizer": "configure_optimizer(spec)",
    "step": "step()",
}

# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _smoke_specs(caps: Capabilities, arch: Architecture = ANY) -> Iterator[ModelSpec]:
    """Small specs inside ``caps`` and ``arch``, the most common first: widths 3 → 5 → 4 → 2 for
    two hidden layers (all different, so a transposed or misplaced array cannot hide behind a
    matching shape), fixed sizes as declared."""
    hidden = [h for h in (*HIDDEN_PREFERENCE, *sorted(caps.hidden)) if h in caps.hidden]
    defined = [(o, l) for o in registry.ACTIVATIONS for l in registry.LOSSES if o in registry.outputs_for(l)]
    pairs = [p for p in dict.fromkeys((*PAIR_PREFERENCE, *defined))
             if p in defined and p[0] in caps.outputs and p[1] in caps.losses]
    dtype = next((d for d in DTYPES if d in caps.dtypes), None)
    reduction = next((r for r in REDUCTIONS if r in caps.reductions), None)
    if dtype is None or reduction is None:
        return
    hidden_choices = list(dict.fromkeys(hidden[:2])) or [None]
    for output, loss in pairs[:4]:
        for h in hidden_choices:
            sizes = arch.smoke_sizes() if h and arch.hidden_layers else (*arch.smoke_sizes()[:1],
                                                                         arch.smoke_sizes()[-1])
            yield ModelSpec(sizes, hidden=h or (), output=output, loss=loss, reduction=reduction, dtype=dtype,
                            seed=11)


def _shape_hint(name: str, got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(got) == 2 and got == expected[::-1]:
        return " — transposed? weights are (out_features, in_features), like torch.nn.Linear"
    if len(expected) == 1 and got in ((expected[0], 1), (1, expected[0])):
        return " — a column/row vector? return biases and their gradients as 1-D (out,)"
    return ""


def _check_grads(owner: str, grads: Any, state: Mapping[str, np.ndarray]) -> list[str]:
    where = f"{owner} model.loss_and_grads(x, y)"
    if not isinstance(grads, Mapping):
        n = f" of {len(grads)}" if hasattr(grads, "__len__") else ""
        return [f"{where} must return (loss, grads) with grads a dict {{name: array}} keyed like the state "
                f"({', '.join(list(state)[:2])}, …); got a {type(grads).__name__}{n}"]
    problems = []
    keys, expected = list(map(str, grads)), list(state)
    missing, unexpected = [k for k in expected if k not in keys], [k for k in keys if k not in expected]
    if missing or unexpected:
        problems.append(f"{where}: grads keyed {keys}, expected {expected} — the same names as the state given to "
                        f"build(): layers.{{k}}.weight (out, in) and layers.{{k}}.bias (out,), k counting dense "
                        f"layers from 0" + (f" (missing {missing})" if missing and not unexpected else ""))
    for name in expected:
        if name not in grads:
            continue
        g = grads[name]
        try:
            arr = np.asarray(g)
        except Exception as exc:  # noqa: BLE001 - anything that is not array-like
            problems.append(f"{where}: grads[{name!r}] is not an array ({type(exc).__name__}: {exc})")
            continue
        if arr.dtype.kind not in "fiu":
            problems.append(f"{where}: grads[{name!r}] must hold numbers, got dtype {arr.dtype} "
                            f"({type(g).__name__})")
            continue
        # a gradient of the wrong shape (a bias summed over no axis or the wrong one, a transposed
        # weight) is a learner's bug, not the adapter's: the comparison fails it and names the cause
    return problems


def _check_model(owner: str, model: Any, spec: ModelSpec, state: Mapping[str, np.ndarray]) -> list[str]:
    from ..core.compare import prepare_batch
    from ..core.matrix import make_batch

    kind = type(model).__name__
    if model is None:
        return [f"{owner}.build(spec, state) returned None: return the model object"]
    missing = [sig for name, sig in REQUIRED_MODEL_METHODS.items() if not callable(getattr(model, name, None))]
    if missing:
        return [f"model returned by {owner}.build() ({kind}) has no {sig}" for sig in missing]
    x, y = make_batch(spec, 6, seed=5, target="labels" if registry.takes_class_indices(spec.loss["name"]) else "dense")
    xs, target = prepare_batch(spec, x, y)
    n, c = xs.shape[0], spec.sizes[-1]
    problems = []
    if callable(getattr(model, "state_dict", None)):  # first: did build start from the given weights?
        problems += _check_state_dict(kind, model, state)
    try:
        out = np.asarray(model.forward(xs.copy()))
    except Exception as exc:  # noqa: BLE001 - reported with the spec it happened on
        problems.append(f"{kind}.forward(x) raised {type(exc).__name__}: {exc} (x is ({n}, {spec.sizes[0]}): "
                        f"batches are rows)")
    else:
        if out.shape != (n, c):
            hint = " — transposed: batches are rows, return (N, C)" if out.shape == (c, n) else ""
            problems.append(f"{kind}.forward(x) returned shape {out.shape}, expected (N, C) = ({n}, {c}){hint}")
    try:
        result = model.loss_and_grads(xs.copy(), target.copy())
    except Exception as exc:  # noqa: BLE001
        kind_y = "int class labels (N,)" if target.ndim == 1 else "float (N, C) rows"
        problems.append(f"{kind}.loss_and_grads(x, y) raised {type(exc).__name__}: {exc} (x ({n}, {spec.sizes[0]}), "
                        f"y {kind_y} for {spec.loss['name']})")
        return problems
    if not (isinstance(result, tuple | list) and len(result) == 2):
        length = f" of length {len(result)}" if hasattr(result, "__len__") else ""
        problems.append(f"{kind}.loss_and_grads(x, y) must return a pair (loss, grads), got "
                        f"{type(result).__name__}{length}")
        return problems
    loss, grads = result
    loss_arr = np.asarray(loss) if not isinstance(loss, Mapping) else np.asarray(None)
    if loss_arr.dtype.kind not in "fiu" or loss_arr.size != 1:
        detail = f"an array of shape {loss_arr.shape}: reduce it to one number" if loss_arr.size > 1 else \
            f"{type(loss).__name__}"
        problems.append(f"{kind}.loss_and_grads(x, y) must return the loss as one number first, got {detail}")
    problems += _check_grads(kind, grads, state)
    try:
        model.load_state_dict({k: v.copy() for k, v in state.items()})
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{kind}.load_state_dict(state) raised {type(exc).__name__}: {exc} (state is "
                        f"{{name: array}} like the one given to build())")
    return problems


def _check_state_dict(kind: str, model: Any, state: Mapping[str, np.ndarray]) -> list[str]:
    try:
        got = model.state_dict()
    except Exception as exc:  # noqa: BLE001
        return [f"{kind}.state_dict() raised {type(exc).__name__}: {exc}"]
    if not isinstance(got, Mapping) or list(map(str, got)) != list(state):
        keys = list(got) if isinstance(got, Mapping) else type(got).__name__
        return [f"{kind}.state_dict() must return {{name: array}} with the names of the state given to build() "
                f"({list(state)}), got {keys}"]
    for name, expected in state.items():
        arr = np.asarray(got[name])
        if arr.shape != expected.shape:
            return [f"{kind}.state_dict()[{name!r}] has shape {arr.shape}, expected {expected.shape}"
                    + _shape_hint(name, arr.shape, expected.shape)]
        if not np.allclose(arr.astype(np.float64), expected.astype(np.float64), rtol=1e-6, atol=0):
            return [f"{kind}.state_dict()[{name!r}] is not the weight given to build(): build(spec, state) must "
                    f"start from exactly those weights (not its own random initialisation)"]
    return []


def _check_ops(owner: str, obj: Any) -> list[str]:
    """What is wrong with the ops an implementation exposes for substitution (none: ``[]``)."""
    import difflib

    from .reference_ops import OPS

    ops = getattr(obj, "ops", None)
    if ops is None:
        return []
    if not isinstance(ops, Mapping):
        return [f"{owner}.ops must be a dict {{op name: function}}, got {type(ops).__name__}"]
    problems = []
    for name, f in ops.items():
        if name not in OPS:
            close = difflib.get_close_matches(str(name), OPS, n=3, cutoff=0.6)
            problems.append(f"{owner}.ops[{name!r}]: not an op name" + (f" (did you mean {', '.join(close)}?)"
                                                                        if close else ""))
        elif not callable(f):
            problems.append(f"{owner}.ops[{name!r}] is not callable ({type(f).__name__})")
    try:
        if "ops" not in inspect.signature(obj.build).parameters:
            problems.append(f"{owner}.build must take ops=None to expose ops: def build(self, spec, state, ops=None) "
                            "(a dict of the ops to use instead of yours)")
    except (AttributeError, TypeError, ValueError):
        pass
    return problems


def validate_implementation(obj: Any, *, smoke: bool = True) -> Capabilities:
    """Check that ``obj`` follows the adapter protocol and return its effective capabilities.

    Static checks: ``name`` (a string) and ``build(spec, state)``; the declared capabilities.
    With ``smoke`` (the default) a small model inside the capabilities is built and run once:
    ``forward`` returns ``(N, C)``, ``loss_and_grads`` returns ``(number, {name: array})`` keyed
    and shaped like the state, ``load_state_dict`` accepts a state, ``state_dict`` (if any) gives
    back the weights ``build`` was given. A model without ``configure_optimizer``/``step``/
    ``state_dict`` gets ``training`` set (its training checks are not implemented), unless
    ``optimizers`` were declared — then it is an error.

    Raises :class:`AdapterError` listing every problem.
    """
    owner = owner_of(obj)
    if isinstance(obj, type):
        raise AdapterError(owner, [f"got the class {owner}, not an implementation object: make the factory return "
                                   f"{owner}() (an instance)"])
    problems = []
    name = getattr(obj, "name", None)
    if name is None:
        problems.append(f"{owner}.name missing: add a class attribute name = \"my-net\" (a label for the reports)")
    elif not isinstance(name, str) or not name:
        problems.append(f"{owner}.name must be a non-empty string, got {name!r}")
    build = getattr(obj, "build", None)
    if build is None:
        problems.append(f"{owner}.build missing: def build(self, spec, state) -> model (spec is a "
                        f"scratchnet.ModelSpec, state the weights {{'layers.0.weight': (out, in), ...}})")
    elif not callable(build):
        problems.append(f"{owner}.build is not callable ({type(build).__name__})")
    else:
        try:
            inspect.signature(build).bind(None, None)
        except TypeError:
            problems.append(f"{owner}.build must take (spec, state), its signature is {inspect.signature(build)}")
        except ValueError:  # no signature (a builtin): trust it
            pass
    problems += _check_ops(owner, obj)
    try:
        caps = capabilities_of(obj)
    except AdapterError as exc:
        problems += exc.problems
        caps = None
    except Exception as exc:  # noqa: BLE001 - a capabilities() method that raises
        problems.append(f"{owner}.capabilities raised {type(exc).__name__}: {exc}")
        caps = None
    if problems or caps is None or not smoke:
        if problems:
            raise AdapterError(owner, problems)
        return caps or Capabilities.everything()

    if caps.architectures:  # declared: each must build and run
        for arch in caps.architectures:
            outcome = _smoke(owner, obj, caps, arch)
            if isinstance(outcome, list):
                raise AdapterError(owner, outcome)
        return outcome
    # not declared: the default depth, else one hidden layer — and say which was chosen
    default = _smoke(owner, obj, caps, ANY)
    if not isinstance(default, list):
        return default
    if "leave nothing to check" in default[0]:
        raise AdapterError(owner, default)
    one = Architecture(depth=1, how="found", why=f"{DEFAULT_DEPTH} hidden layers: {_first_line(default[0])}")
    fallback = _smoke(owner, obj, caps, one)
    if not isinstance(fallback, list):
        return replace(fallback, architectures=(one,))
    raise AdapterError(owner, [*default, f"with 1 hidden layer ({'-'.join(map(str, one.smoke_sizes()))}) too: "
                                         f"{_first_line(fallback[0])} — if build takes fixed sizes or one depth, "
                                         f"declare them: capabilities = {{\"architectures\": [(784, 30, 10)]}} "
                                         f"or [1]"])


def _first_line(problem: str) -> str:
    return " ".join(problem.split())[:200]


def _smoke(owner: str, obj: Any, caps: Capabilities, arch: Architecture) -> Capabilities | list[str]:
    """Build and run one small model inside ``caps`` and ``arch``: the capabilities (with what
    training needs) when it follows the protocol, else the problems found."""
    tried = []
    for spec in _smoke_specs(caps, arch):
        state = initial_state(spec)
        try:
            model = obj.build(spec, {k: v.copy() for k, v in state.items()})
        except NotImplementedError as exc:
            tried.append(f"{spec.describe()}: {exc}" if str(exc) else spec.describe())
            continue
        except Exception as exc:  # noqa: BLE001
            return [f"{owner}.build(spec, state) raised {type(exc).__name__}: {exc} (spec {spec.describe()})"]
        problems = _check_model(owner, model, spec, state)
        if problems:
            return [f"{p} [built from {spec.describe()}]" for p in problems]
        return _training_capabilities(owner, obj, model, caps)
    if tried:
        return [f"{owner}.build raised NotImplementedError for all {len(tried)} models tried, e.g. {tried[0]} — "
                "finish the adapter, or declare capabilities that match what build accepts"]
    return [f"{owner}.capabilities leave nothing to check: no dtype, reduction or defined (output activation, loss) "
            f"pair is declared ({caps.describe()})"]


def _training_capabilities(owner: str, obj: Any, model: Any, caps: Capabilities) -> Capabilities:
    kind = type(model).__name__
    missing = [sig for name, sig in TRAINING_MODEL_METHODS.items() if not callable(getattr(model, name, None))]
    if not missing or not caps.optimizers:
        return caps
    if "optimizers" in caps.declared:
        raise AdapterError(owner, [f"{owner}.capabilities declare optimizers {sorted(caps.optimizers)}, but the model "
                                   f"({kind}) has no {', '.join(missing)}: add them or declare \"optimizers\": []"])
    return replace(caps, training=f"the model ({kind}) has no {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# Loading --impl
# --------------------------------------------------------------------------------------------

def _import_from_path(path: Path) -> Any:
    """Import a ``.py`` file as the module it is inside its package (so its relative imports
    work): walk up while the folder has an ``__init__.py``, put the folder above on
    ``sys.path``, import the dotted name."""
    path = path.resolve()
    parts = [path.stem]
    root = path.parent
    while (root / "__init__.py").exists():
        parts.insert(0, root.name)
        root = root.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(".".join(parts))


def load_implementation(text: str | None, *, validate: bool = True) -> tuple[Any, Capabilities]:
    """``--impl`` resolved: ``package.module:factory`` or ``path/to/file.py:factory`` (the
    current directory is importable, as with ``python -m``). ``factory`` is an implementation
    object, a class (instantiated) or a function returning one. ``None``: scratchnet.

    Returns ``(implementation, capabilities)``; raises :class:`AdapterError` with what is wrong."""
    from ..core.protocol import ScratchnetImplementation

    if text is not None and not text.strip():
        raise AdapterError("--impl", ["--impl is empty: give 'package.module:factory' or 'path/to/adapter.py:factory', "
                                      "or leave it out to test scratchnet itself (an unset variable in CI?)"])
    if not text:
        impl = ScratchnetImplementation()
        return impl, Capabilities.everything()
    module_name, sep, attr = text.rpartition(":")
    if not sep or not module_name or not attr:
        raise AdapterError("--impl", [f"--impl must look like 'package.module:factory' or "
                                      f"'path/to/adapter.py:factory', got {text!r}"])
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise AdapterError("--impl", [f"--impl {text!r}: no file {path} (relative to {cwd})"])
            module = _import_from_path(path)
        else:
            module = importlib.import_module(module_name)
    except AdapterError:
        raise
    except Exception as exc:  # noqa: BLE001 - ImportError, or the module itself raising
        raise AdapterError("--impl", [f"--impl {text!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
                                      f"run from your project directory, or pip install your package"]) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(n for n in dir(module) if not n.startswith("_"))[:12]
            raise AdapterError("--impl", [f"--impl {text!r}: {module_name} has no {attr!r} "
                                          f"(it has: {', '.join(found)})"])
        obj = getattr(obj, part)
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "build")):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001
            raise AdapterError("--impl", [f"--impl {text!r}: calling {attr}() raised "
                                          f"{type(exc).__name__}: {exc}"]) from exc
    caps = validate_implementation(obj) if validate else capabilities_of(obj)
    from .reproducer import remember_ref

    remember_ref(obj, text)  # its reproducers load it the same way
    return obj, caps
