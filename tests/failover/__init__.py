"""End-to-end failover tests: real control service, agents, writers and faults (issue 11)."""
