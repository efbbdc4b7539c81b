"""Runtime adapters: how the residency planner's plan is applied to llama.cpp, vLLM and Ollama."""
