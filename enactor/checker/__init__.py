"""The interleaving checker over the real enactor code: schedules, in-process runs, the invariants and liveness."""
