"""``python -m modelkin.cli``: the ``modelkin`` command."""

import sys

from . import main

sys.exit(main())
