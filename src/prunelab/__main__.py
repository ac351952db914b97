"""``python -m prunelab`` is the ``prunelab`` command (``torchrun ... -m prunelab``)."""

import sys

from prunelab.cli import main

sys.exit(main())
