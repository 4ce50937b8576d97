"""Benchmarks: prefill FLOPs per budget (meta device) and measured prefill/decode latency."""
