"""Layer 4 (with conversation below it): who the companion is and what it remembers."""
