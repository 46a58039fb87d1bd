"""Worked examples for ``check_layer_ops``: a learner's ``layers.py`` for the second assignment of the
course (batch norm, dropout, convolution, max pooling, ``(out, cache)`` style) — ``layers.py`` right,
and each ``*_bugs.py`` with a pair of classic mistakes planted (named in its docstring)."""
