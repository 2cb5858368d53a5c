"""The speech pipeline stages: STT, LLM backends, clause chunker, TTS."""
