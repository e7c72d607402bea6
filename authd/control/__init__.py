"""The Route 53-compatible control API: REST/XML over ASGI, one module per family of operations."""
