"""authd: an authoritative DNS server on trio with Route 53-style weighted and alias record sets."""

__version__ = "0.1.0"
