"""``python -m evaluation``: score a model on held-out real crops (see :mod:`.evaluate`)."""

import sys

from .evaluate import main

sys.exit(main())
