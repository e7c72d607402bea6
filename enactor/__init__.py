"""enactor: the planner, the enactors with their TXT-record lock, the cleaner, and the outage demo."""
