"""Grade a class: many submissions checked in isolation and in parallel (``scratchnet-conformance grade``).

:mod:`.course` reads the teacher's course file; :mod:`.isolate` runs one submission in its own
limited process (:mod:`.child` is that process); :mod:`.engine` runs them on a local process pool or
a Dask cluster; :mod:`.harness` is the one place that calls the op and network checks; :mod:`.outputs`
and :mod:`.feedback` write grades.csv, the misconception table, feedback and Gradescope's results.json.
"""
