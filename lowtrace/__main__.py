"""``python -m lowtrace``: the same as the ``lowtrace`` command."""

from lowtrace._cli import run

run()
