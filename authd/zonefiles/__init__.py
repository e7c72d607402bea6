"""Zones from disk: RFC 1035 master files, Route 53 JSON, and seeding a store from them."""
