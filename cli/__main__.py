"""``python -m cli``: the same as the ``embedtune`` command."""

from cli.main import main

main()
