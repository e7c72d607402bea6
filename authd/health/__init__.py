"""Route 53 health checks: the configuration, the policy, and the prober."""
