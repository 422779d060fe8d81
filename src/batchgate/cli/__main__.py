"""``python -m batchgate.cli``: the same as the ``batchgate`` command."""

import sys

from batchgate.cli import main

sys.exit(main())
