"""Layer 3: turn-taking and speaking: session, VAD, endpointing, clause chunker, responses, history."""
