"""Who the companion is: persona and prompt building."""
