"""The DNS plane: the answer pipeline, the serving index, the UDP/TCP shells, abuse guards and zone transfers."""
