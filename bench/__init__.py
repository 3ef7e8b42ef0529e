"""Benchmarks: the gateway against the simulator read directly (the floor) and reference relays."""
