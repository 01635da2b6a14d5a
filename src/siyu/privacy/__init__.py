"""Personal-information duties (PIPL): keyed hashes, encryption at rest, subject rights, retention."""
