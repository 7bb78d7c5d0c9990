"""``python -m lowtrace``: the same as the ``lowtrace`` command."""

import sys

from lowtrace._cli import main

sys.exit(main())
