"""``python -m training`` is ``python -m training.run``."""

import sys

from .run import main

sys.exit(main())
