"""`python -m authd` runs the `authd` command."""

from authd.cli import main

raise SystemExit(main())
