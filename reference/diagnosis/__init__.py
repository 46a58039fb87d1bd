"""Diagnosis: when an implementation disagrees with torch, its independent root causes — which op
of which layer is wrong, how, and the right formula — in words a learner can act on.

One catalogue, two levels:

* :mod:`.catalogue` — every known mistake, one :class:`~.catalogue.Mistake` entry each: its key,
  the sites where it can enter (activation forward/backward, the output's backward, a fused
  pair's gradient, a loss value or gradient, the dense layer), how to plant it on torch's own
  computation there, its words and the right formula;
* :mod:`.network` — a whole network's failing records: substitution of the ops it exposes
  (:mod:`.substitution`), a wrong forward, large logits, then the backward walk against torch
  networks with the catalogue's mistakes planted (:mod:`.reference_net`);
* :mod:`.ops` — a learner's single ops: the catalogue's plants on the op's own inputs as models
  of the error, fitted as ``yours ≈ k × model``;
* :mod:`.factors` — the one least-squares fit, ``LOOSE`` and the names of factors (``N·C``, ½);
* :mod:`.causes` — the one :class:`~.causes.RootCause` (structured: op, part, layers,
  parameter, area, factor, …), its encoding in a record's ``diagnosis`` field, the grouping of a
  run's causes and their renderings (terminal, the report's tables).

Adding a mistake
----------------
1. Append a :class:`~.catalogue.Mistake` to :data:`~.catalogue.CATALOGUE`: ``key``, ``words``,
   ``right``, ``model`` (how op-level evidence calls the wrong result), ``plants`` — ``{site:
   plant(Site) -> the wrong result}`` — and where it applies (``acts``, ``losses``, ``layers``).
   A plant at ``activation_backward``, ``output_backward`` or ``fused_gradient`` is tried by the
   network walk *and* at op level; the other sites at op level.
2. Add one row to ``CASES`` in ``tests/diagnosis/test_catalogue.py``: the learner's wrong op
   and the model it runs on. The parametrized test checks that the mistake is caught, and named
   by its key, at both levels where it applies.

A mistake at a site no entry uses yet (a bias gradient summed over the wrong axis, an optimizer
step, an input modified in place, a convolution) adds that site's name to
:data:`~.catalogue.SITES`, the :class:`~.catalogue.Site` fields its plant reads, and the one place
that offers it: :func:`.reference_net.reference_pass` (network) or ``ops._site`` (op level).
"""

from .causes import RootCause, decode, diagnosis_text, encode, group, summary_lines
from .network import Problem, annotate, annotate_training, diagnose

__all__ = ["RootCause", "encode", "decode", "group", "summary_lines", "diagnosis_text", "Problem", "annotate",
           "annotate_training", "diagnose"]
