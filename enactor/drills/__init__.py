"""The outage reproduced with real processes, the game day, and their views (timeline, live page)."""
