"""``python -m evaluation``: score a model on held-out real crops (see :mod:`.cli`)."""

import sys

from .cli import main

sys.exit(main())
