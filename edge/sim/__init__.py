"""A simulated xiaozhi device that behaves like the firmware; drives tests and benchmarks."""
