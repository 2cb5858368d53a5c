"""Audio input/output: file reading, resampling, WAV writing."""
