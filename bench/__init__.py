"""Benchmarks: each module measures one part against a peer in the same run (`make bench`)."""
