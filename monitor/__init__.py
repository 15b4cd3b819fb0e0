"""nexomon: a monitor for OpenAI-compatible LLM gateways (NexoRouter first)."""

__version__ = "0.1.0"
