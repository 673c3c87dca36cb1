"""python -m mailadmin."""

from mailadmin.cli import main

raise SystemExit(main())
