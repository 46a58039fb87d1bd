"""The harness core: the torch twin of a :class:`scratchnet.ModelSpec` (:mod:`.torch_model`, named
by :mod:`.mapping`), the comparison of one model (:mod:`.compare`), lockstep training
(:mod:`.lockstep`), the tolerance table (:mod:`.tolerances`), the records every comparison yields
(:mod:`.records`), the implementation protocol (:mod:`.protocol`) and the matrix of cases drawn from
scratchnet's registry (:mod:`.matrix`). It imports only scratchnet and torch (lazily,
:mod:`.torch_import`); the products around it import it, never the other way."""
