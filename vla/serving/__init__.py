"""Serving through vLLM's OpenAI-compatible server, and talking to it."""
