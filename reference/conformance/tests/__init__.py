"""The deterministic conformance matrix as an installed pytest package, so a project that depends
on scratchnet checks its own network from its own directory::

    pytest --pyargs scratchnet_reference.conformance.tests --scratchnet-impl mypkg.adapter:make_implementation

(``--scratchnet-impl`` also takes ``path/to/adapter.py:factory``; the options ``--scratchnet-device``,
``--scratchnet-report-dir`` and the fixtures come from the ``scratchnet_conformance`` pytest plugin, installed with
scratchnet.) What the implementation does not declare is skipped as "not implemented by <impl>"
and counted in the summary. The property-based tests (hypothesis) live in the scratchnet
repository's ``tests/conformance/``; run them from a checkout with the same ``--scratchnet-impl``.
"""
