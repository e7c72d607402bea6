"""The `authd` command line: the dispatcher and one module per group of commands."""
