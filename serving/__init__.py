"""Layer 2B serving: the OpenAI-compatible gateway whose requests the Reasoning Plane places."""
