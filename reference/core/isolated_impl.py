"""An implementation whose every call runs in a killable worker (:mod:`.isolation`).

:class:`IsolatedImplementation` wraps a user's :class:`~.protocol.Implementation`: ``build`` and every
method of the models it returns (``forward``, ``loss_and_grads``, ``state_dict``,
``load_state_dict``, ``configure_optimizer``, ``step``) run in one persistent worker process,
forked from the parent with the user's implementation in it. Arguments travel by pickle, so the
user's code only ever sees copies; results come back the same way, so nothing the oracle reads
shares memory with it. A call that hangs, exits or raises comes back as a
:class:`~.isolation.UserCodeFailure` (an ``Exception``) naming the call — the job fails with that
message and the run goes on; after a kill, the next call gets a fresh worker (its models are gone:
each job builds its own).

Only the user's code runs in the worker: torch stays in the parent, so CUDA is unaffected by
the fork.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from .isolation import DEFAULT_TIMEOUT_S, Worker

__all__ = ["IsolatedImplementation", "ModelProxy"]

#: The worker's models by handle (lives in the worker process only).
_MODELS: dict[int, Any] = {}


def _build(impl: Any, handle: int, spec: Any, state: Mapping[str, Any]) -> None:
    _MODELS[handle] = impl.build(spec, state)


def _method(impl: Any, handle: int, name: str, args: tuple[Any, ...]) -> Any:
    try:
        model = _MODELS[handle]
    except KeyError:
        raise RuntimeError("this model was lost when its worker was replaced after an earlier failure; "
                           "build it again") from None
    return getattr(model, name)(*args)


def _has(impl: Any, handle: int, name: str) -> bool:
    return callable(getattr(_MODELS.get(handle), name, None))


def _drop(impl: Any, handle: int) -> None:
    _MODELS.pop(handle, None)


class ModelProxy:
    """A model living in the worker: each protocol method is one isolated call."""

    def __init__(self, owner: IsolatedImplementation, handle: int):
        self._owner = owner
        self._handle = handle

    def _call(self, name: str, *args: Any) -> Any:
        return self._owner.worker.call(_method, self._handle, name, args, label=f"model.{name}()")

    def forward(self, x: Any) -> Any:
        return self._call("forward", x)

    def loss_and_grads(self, x: Any, y: Any) -> Any:
        return self._call("loss_and_grads", x, y)

    def state_dict(self) -> Any:
        return self._call("state_dict")

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._call("load_state_dict", dict(state))

    def configure_optimizer(self, spec: Mapping[str, Any]) -> None:
        self._call("configure_optimizer", dict(spec))

    def step(self) -> None:
        self._call("step")

    def __getattr__(self, name: str) -> Any:
        # optional protocol methods: present only when the user's model has them
        if name.startswith("_") or not self._owner.worker.call(_has, self._handle, name):
            raise AttributeError(name)
        return lambda *args: self._call(name, *args)

    def __del__(self) -> None:
        owner = self.__dict__.get("_owner")
        if owner is not None and owner.worker.pid is not None:
            owner.release(self._handle)


class IsolatedImplementation:
    """``impl`` behind a :class:`~.isolation.Worker` (``timeout`` seconds per call). Its ``name``,
    ``capabilities`` and other attributes read as the wrapped implementation's."""

    def __init__(self, impl: Any, timeout: float = DEFAULT_TIMEOUT_S):
        self.inner = impl
        self.name = getattr(impl, "name", "impl")
        self.worker = Worker(impl, name=f"implementation {self.name!r}", timeout=timeout)
        self._handles = itertools.count(1)
        self._released: list[int] = []

    def build(self, spec: Any, state: Mapping[str, Any]) -> ModelProxy:
        for handle in self._released:  # models whose proxies are gone (dropped in one go, not in __del__)
            self.worker.call(_drop, handle)
        self._released.clear()
        handle = next(self._handles)
        self.worker.call(_build, handle, spec, dict(state), label="build()")
        return ModelProxy(self, handle)

    def release(self, handle: int) -> None:
        self._released.append(handle)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["inner"], name)

    def close(self) -> None:
        self.worker.close()

    def __enter__(self) -> IsolatedImplementation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
