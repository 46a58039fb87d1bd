"""A learner's function names read as the suite's ops: ``sigmoid_prime`` is ``sigmoid_backward``,
``cross_entropy_derivative`` is ``cross_entropy_grad``, ``affine_forward`` is ``dense_forward``,
``softmax_loss`` is ``softmax_cross_entropy``.

Only the *name* is read here (what the function claims to be); how its arguments and results
line up with the op's signature is :mod:`.conventions`' job. A name is read as

    [d_ | d | grad_] BASE [_derivative | _deriv | _prime | _grad | _gradient | _delta | _backward | _bwd]
    BASE [_forward | _fwd | _loss]

after camelCase is split (``sigmoidGradient`` → ``sigmoid_gradient``), with ``BASE`` an op base
(an activation, a loss, a fused pair, ``dense``) or one of the aliases learners use
(:data:`ALIASES`: ``sigma``, ``logistic``, ``affine``, ``linear``, ``fc``, ``mean_squared_error``,
``categorical_cross_entropy``, ``ce``, ``bce``, ``softmax_loss`` …). A name with such an affix whose
base is none of these (``svm_loss``, ``batchnorm_fwd``) *claims* to be an op the suite does not
have: :func:`claims_op` says so, and the loader refuses it with the closest names instead of
silently leaving it unchecked.

The layer ops (:data:`~scratchnet_reference.core.layer_reference.LAYER_OPS`: batch norm, dropout,
conv2d, max pooling, forward and backward with a cache) are read by :func:`read_layer_name`: their
own names, or the course's (:data:`LAYER_ALIASES`: ``conv_forward_naive``, ``max_pool_backward``,
``batchnorm_backward_alt`` …), with ``_naive``/``_fast`` and camelCase as for the others.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ..core.layer_reference import LAYER_OPS
from ..core.reference_ops import OPS

__all__ = ["Reading", "read_name", "read_layer_name", "claims_op", "claimed_base", "closest_names", "ALIASES",
           "LAYER_ALIASES", "DERIVATIVE_SUFFIXES"]

#: suffixes (and prefixes) that make a name a derivative, in the order they are tried
DERIVATIVE_SUFFIXES = ("_derivative", "_deriv", "_prime", "_gradient", "_grad", "_delta", "_backward", "_bwd",
                       "_back")
DERIVATIVE_PREFIXES = ("derivative_of_", "grad_", "d_", "d")
FORWARD_SUFFIXES = ("_forward", "_fwd", "_loss", "_function", "_fn")
#: the forward suffixes that claim an op even when the base is unknown (``loss_fn`` claims nothing)
_CLAIMING_FORWARD = ("_forward", "_fwd", "_loss")

#: learners' names for the suite's bases (activation, loss, fused pair or ``dense``)
ALIASES: dict[str, str] = {
    "sigma": "sigmoid", "logistic": "sigmoid", "sigm": "sigmoid",
    "lrelu": "leaky_relu", "leakyrelu": "leaky_relu", "leaky": "leaky_relu",
    "swish": "silu",
    "affine": "dense", "linear": "dense", "fc": "dense", "fully_connected": "dense",
    "mean_squared_error": "mse", "squared_error": "mse", "quadratic": "mse", "mean_square_error": "mse",
    "mean_absolute_error": "l1", "mae": "l1",
    "crossentropy": "cross_entropy", "categorical_cross_entropy": "cross_entropy",
    "categorical_crossentropy": "cross_entropy", "ce": "cross_entropy", "cce": "cross_entropy",
    "binary_crossentropy": "binary_cross_entropy", "bce": "binary_cross_entropy",
    "log_likelihood": "nll", "negative_log_likelihood": "nll",
    "softmax": "softmax",
    # a loss named after the output it fuses (CS231n's softmax_loss(x, y) -> (loss, dx))
    "softmax_crossentropy": "softmax_cross_entropy", "softmax_ce": "softmax_cross_entropy",
    "sigmoid_bce": "sigmoid_binary_cross_entropy",
}
#: the course's names for the layer ops (``conv_forward_naive`` once ``_naive`` is stripped)
LAYER_ALIASES: dict[str, str] = {
    "conv_forward": "conv2d_forward", "conv_backward": "conv2d_backward",
    "max_pool_forward": "maxpool2d_forward", "maxpool_forward": "maxpool2d_forward",
    "max_pool_backward": "maxpool2d_backward", "maxpool_backward": "maxpool2d_backward",
    "batchnorm_backward_alt": "batchnorm_backward",
}
_FUSED_BY_OUTPUT = {"softmax": "softmax_cross_entropy", "sigmoid": "sigmoid_binary_cross_entropy",
                    "log_softmax": "log_softmax_nll"}


@dataclass(frozen=True)
class Reading:
    """What a name claims: the suite ``op`` it fills (``sigmoid_backward``), the ``base`` and
    ``role`` (``forward``/``backward``) and the ``affix`` that said so (``_prime``; ``""`` for a
    name that is an op name already)."""

    name: str
    op: str
    affix: str


def _snake(name: str) -> str:
    """``sigmoidGradient`` → ``sigmoid_gradient``; ``dSigmoid`` → ``d_sigmoid``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _strip(snake: str) -> str:
    """CS231n's implementation tags: ``softmax_loss_naive`` / ``_vectorized`` / ``_fast`` → ``softmax_loss``."""
    return re.sub(r"_(naive|vectorized|vectorised|fast|np|numpy|impl)$", "", snake)


def _base(text: str) -> str | None:
    """The suite's base for ``text`` (``sigma`` → ``sigmoid``), or None."""
    text = ALIASES.get(text, text)
    if text in OPS and OPS[text].role == "forward":
        return text
    return "dense" if text == "dense" else None


def _op(base: str, role: str, loss_named: bool) -> str | None:
    """The op that ``base`` in ``role`` is: an activation's ``_backward``, a loss's ``_grad``, a
    fused pair's ``_grad``, ``dense_forward``/``dense_backward``; ``softmax`` named as a loss
    (``softmax_loss``) is the fused softmax + cross-entropy."""
    if base == "dense":
        return f"dense_{role}"
    if loss_named and base in _FUSED_BY_OUTPUT:
        base = _FUSED_BY_OUTPUT[base]
    family = OPS[base].family
    if role == "forward":
        return base
    return base + ("_backward" if family == "activation" else "_grad")


def read_name(name: str) -> Reading | None:
    """What op ``name`` claims to be, or None when it claims none (a helper: ``one_hot``,
    ``predict``). An op name is itself (affix ``""``)."""
    if name in OPS:
        return Reading(name, name, "")
    snake = _strip(_snake(name))
    if snake in OPS:
        return Reading(name, snake, "camelCase")
    for suffix in DERIVATIVE_SUFFIXES:
        if snake.endswith(suffix) and (base := _base(snake[: -len(suffix)])):
            # "softmax_loss_grad": the fused pair's gradient
            return Reading(name, _op(base, "backward", False), suffix)
        if snake.endswith(suffix) and snake[: -len(suffix)].endswith("_loss") \
                and (base := _base(snake[: -len(suffix) - 5])):
            return Reading(name, _op(base, "backward", True), "_loss" + suffix)
    for prefix in DERIVATIVE_PREFIXES:
        if snake.startswith(prefix) and (base := _base(snake[len(prefix):])):
            return Reading(name, _op(base, "backward", False), prefix)
    for suffix in FORWARD_SUFFIXES:
        if snake.endswith(suffix) and (base := _base(snake[: -len(suffix)])):
            return Reading(name, _op(base, "forward", suffix == "_loss"), suffix)
    if (base := _base(snake)) is not None:
        return Reading(name, _op(base, "forward", False), "alias")
    return None


def read_layer_name(name: str) -> str | None:
    """The layer op ``name`` is (its own name, or the course's: ``conv_forward_naive`` →
    ``conv2d_forward``), or None."""
    if name in LAYER_OPS:
        return name
    snake = _strip(_snake(name))
    return snake if snake in LAYER_OPS else LAYER_ALIASES.get(snake)


def claims_op(name: str) -> bool:
    """Whether ``name`` has a derivative or forward affix (or is close to an op name) without
    being readable: ``svm_loss``, ``batchnorm_backward``, ``sigmoid_prme``."""
    snake = _strip(_snake(name))
    affixed = snake.endswith(DERIVATIVE_SUFFIXES + _CLAIMING_FORWARD) or \
        any(snake.startswith(p) and len(p) > 1 for p in DERIVATIVE_PREFIXES)
    return affixed or bool(difflib.get_close_matches(snake, list(OPS), n=1, cutoff=0.85))


def closest_names(name: str, n: int = 3) -> list[str]:
    """The op names and learner names closest to ``name`` (for a refusal)."""
    snake = _snake(name)
    known = list(OPS) + list(LAYER_OPS) + list(LAYER_ALIASES) + \
        [f"{alias}{suffix}" for alias in ALIASES for suffix in ("", "_prime", "_derivative")]
    close = difflib.get_close_matches(snake, known, n=n, cutoff=0.6)
    return [c for c in dict.fromkeys(close)]


def claimed_base(name: str) -> tuple[str, str] | None:
    """(base, what) a name claims by its affix: ``svm_loss`` → ("svm", "a loss"),
    ``batchnorm_backward`` → ("batchnorm", "a derivative of"); None without an affix."""
    snake = _strip(_snake(name))
    for suffix in _CLAIMING_FORWARD:
        if snake.endswith(suffix) and len(snake) > len(suffix):
            return snake[: -len(suffix)], "a loss" if suffix == "_loss" else "the forward of"
    for suffix in DERIVATIVE_SUFFIXES:
        if snake.endswith(suffix) and len(snake) > len(suffix):
            return snake[: -len(suffix)], "the derivative of"
    return None
