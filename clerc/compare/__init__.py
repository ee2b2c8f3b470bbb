"""``clerc compare``: several benchmark runs side by side, paired differences, rankings."""
