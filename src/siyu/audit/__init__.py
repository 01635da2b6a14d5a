"""One audit trail: who changed what, when, before → after, written in the transaction of the change."""
