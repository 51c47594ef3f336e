"""``python -m degarble``: the same as the ``degarble`` command."""

from .cli import main

raise SystemExit(main())
