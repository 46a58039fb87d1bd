"""Reports of a run: pandas tables (:mod:`.tables`), plots (:mod:`.plots`), files on disk written
atomically (:mod:`.files`), run metadata (:mod:`.metadata`), the regression gate (:mod:`.gate`) and
the ``report`` / ``gate`` / ``baseline`` commands (:mod:`.commands`)."""
