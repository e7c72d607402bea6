"""`python -m resolver` runs the `resolver` command."""

from resolver.cli import main

raise SystemExit(main())
