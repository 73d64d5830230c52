"""``python -m phoenix_channels`` is the ``phoenix-channels`` command."""

import sys

from .cli import main

sys.exit(main())
