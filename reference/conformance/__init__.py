"""The conformance run: the whole matrix against torch for one implementation (:mod:`.runner`), the
``run`` command (:mod:`.run`), the pytest plugin (:mod:`.plugin`) and the packaged tests
(``pytest --pyargs scratchnet_reference.conformance.tests --scratchnet-impl ...``)."""
