"""``python -m scratchnet_reference`` — the same as the ``scratchnet-conformance`` console script."""

import sys

from .cli import main

sys.exit(main())
