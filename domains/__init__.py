"""Domain plug-ins (mmdd.domains.*). Each composes core pieces; none imports another."""
