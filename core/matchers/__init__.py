"""Matchers by name. Each method is one file that registers its spec (typed options + builder)
with ``MATCHERS`` where it is defined; a domain's own matchers register the same way (medical: ptm,
vision-language: bitm)."""

from .base import MATCHERS, MatcherSpec, MatchingContext, Matcher, siamese
from . import distribution, gradient, trajectory  # noqa: F401  (each registers its methods)

__all__ = ["MATCHERS", "MatcherSpec", "MatchingContext", "Matcher", "siamese"]
