"""mmdd.core: the modality-agnostic matching core (never imports a domain)."""
