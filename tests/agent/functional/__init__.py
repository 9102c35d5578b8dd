"""Real agents as processes on loop devices, with a real control service (root only)."""
