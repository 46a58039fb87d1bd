"""The multi-class study (sigmoid + MSE against softmax + cross-entropy on real data): the data
(:mod:`.datasets`), the experiment (:mod:`.experiment`), its report (:mod:`.report`) and the
``study`` command (:mod:`.command`)."""
