"""Reports of a run, one module per job: the tables' columns and types (:mod:`.schema`), the run's
tables as DataFrames (:mod:`.frames`), the short views the pages show (:mod:`.summaries`), the
Markdown and HTML pages (:mod:`.markdown_page`, :mod:`.html_page`), plots (:mod:`.plots`), report
folders written, read and redrawn (:mod:`.folder`) through atomic files (:mod:`.files`), run metadata
(:mod:`.metadata`), the regression gate (:mod:`.gate`) and the ``report`` / ``gate`` / ``baseline``
commands (:mod:`.commands`)."""
