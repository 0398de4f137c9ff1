"""Data: loading real sources into arrays (`idx`, ...) and feeding them (`pipeline`)."""
