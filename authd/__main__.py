"""`python -m authd` runs the `authd` command."""

from authd.cli.main import main

raise SystemExit(main())
