"""``python -m training.prepare``: see :mod:`training.prepare.cli`."""

import sys

from .cli import main

sys.exit(main())
