"""Build the optional C helper `authd.dns._fastudp` (the batched UDP loop, issue 12).

Everything else is in pyproject.toml. `optional=True`: without a C compiler or Python's
headers the install still succeeds, and `authd.dns.server.serve_udp` runs its Python loop.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "authd.dns._fastudp",
            ["authd/dns/_fastudp.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
