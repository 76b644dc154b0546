"""Questions asked of a scenario: where it breaks, and which shock did how much."""
