"""The bridge between ``network.py`` (the copy with the softmax bug) and the conformance suite —
the same adapter as ``examples/textbook_net/adapter.py``.

Run the suite against this network (from the repository root)::

    scratchnet-conformance run --impl examples.textbook_net_buggy.adapter:make_implementation --out reports/buggy

The harness hands over a ``scratchnet.ModelSpec`` and weights stored like ``torch.nn.Linear``
(``layers.{k}.weight`` ``(out, in)``, ``layers.{k}.bias`` ``(out,)``) and batches as rows; this
file turns those into the textbook network's column vectors and back.
"""

from ..textbook_net.adapter import TextbookImplementation, TextbookModel
from .network import TextbookNetwork


class BuggyTextbookModel(TextbookModel):
    network_class = TextbookNetwork  # this folder's copy, with the softmax bug


class BuggyTextbookImplementation(TextbookImplementation):
    name = "textbook-net-buggy"
    model_class = BuggyTextbookModel


def make_implementation():
    return BuggyTextbookImplementation()
