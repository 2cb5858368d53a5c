"""Layer 2: the engines (STT, LLM backends, TTS), their models, tiers and voices. Imports only core."""
