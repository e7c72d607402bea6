"""resolver: a caching DNS resolver with RFC 2308 negative caching, and cache experiments."""
