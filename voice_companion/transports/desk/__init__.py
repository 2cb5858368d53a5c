"""The desk: sound card streams, echo cancellation, playback and a virtual card for tests."""
