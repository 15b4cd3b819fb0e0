"""What an ok stream result says: its time to first chunk, chunk gaps and token rate.

``StreamSignals`` is the part of ``Exporter`` that exports a ``stream``
result's figures (monitor.probes.stream) per (target, model); it relies on
the Exporter's child cache (``UsageSignals._signal``) and is called with
the Exporter's lock held.

Contracts:

- Only ok stream results are observed (a stalled or broken stream's
  partial figures stay in ``probe --json``, as failures stay out of the
  latency histograms): ``nexomon_stream_time_to_first_chunk_seconds`` once
  per stream, ``nexomon_stream_time_per_output_chunk_seconds`` once per gap
  between output chunks (OpenTelemetry's rule for time per output chunk:
  every chunk after the first), ``nexomon_stream_output_tokens_per_second``
  set to the last value.
- The series appear with the first ok stream of a model: a daemon without
  ``stream_interval`` exports none of them (the per-model series budget of
  docs/architecture.md is unchanged for it).
- A stream job does not feed ``nexomon_probe_duration_seconds`` nor the
  phase histograms (the exporter routes its ok results here instead): the
  time to first chunk is the stream's latency, and a whole stream's
  duration depends on how many tokens the model chose to write. Its usage,
  cost and rate limits count as a chat's; its answered model does not move
  the substitution pair, whose contract is the chat answers'.
"""

from __future__ import annotations

from typing import Any

from monitor.exporter.children import ModelChildren
from monitor.results import ProbeResult

STREAM_PROBE = "stream"  # monitor.probes.stream.KIND (probes sit above the exporter)


class StreamSignals:
    """Mixin of ``Exporter`` (which provides the metrics and the child cache)."""

    stream_ttfc: Any
    stream_chunk: Any
    stream_rate: Any

    # Provided by UsageSignals, declared for the reader and the checker.
    def _signal(self, state: ModelChildren, metric: Any, kind: str) -> Any:
        raise NotImplementedError

    def _observe_stream(self, r: ProbeResult, state: ModelChildren) -> None:
        """Export an ok stream result's figures (see the module docstring)."""
        if r.ttft_s is not None:
            self._signal(state, self.stream_ttfc, "").observe(r.ttft_s)
        if r.chunk_gaps_s:
            chunk = self._signal(state, self.stream_chunk, "")
            for gap in r.chunk_gaps_s:
                chunk.observe(gap)
        if r.output_tokens_per_s is not None:
            self._signal(state, self.stream_rate, "").set(r.output_tokens_per_s)
