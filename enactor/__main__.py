"""`python -m enactor` runs the `enactor` command."""

from enactor.cli import main

raise SystemExit(main())
