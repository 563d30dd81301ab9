"""Druidflow's performance yardstick: the reference dataset, the reference job and the harness that times it."""
