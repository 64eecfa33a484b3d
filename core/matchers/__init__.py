"""Matchers by name. Each method is one file; its spec holds its typed options and builder."""

from ..registry import Registry
from .base import MatcherSpec, MatchingContext, Matcher, siamese
from . import distribution, gradient, trajectory

MATCHERS: Registry[MatcherSpec] = Registry("method")
MATCHERS.add("dm", distribution.SPEC)
MATCHERS.add("mtt", trajectory.SPEC)
MATCHERS.add("dc", gradient.DC_SPEC)
MATCHERS.add("dsa", gradient.DSA_SPEC)

__all__ = ["MATCHERS", "MatcherSpec", "MatchingContext", "Matcher", "siamese"]
