"""The diagnosis: its catalogue of mistakes at both levels. Skipped, with the install hint, where
torch is missing."""

import pytest

pytest.importorskip("torch", reason="the reference harness needs PyTorch: "
                    "pip install -c constraints.txt 'scratchnet[reference]'")
