"""Benchmarks: latency, throughput, memory and power reports."""
