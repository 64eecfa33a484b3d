"""Seeded generators. Every random draw in mmdd comes from a generator passed down."""

from __future__ import annotations

import hashlib

import torch


def make_generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def derived_generator(*parts) -> torch.Generator:
    """A generator seeded by a stable digest of ``parts`` (ints and strings): the same parts give the
    same draws in every process, and different parts independent ones."""
    digest = hashlib.sha256(repr(tuple(parts)).encode()).digest()
    return make_generator(int.from_bytes(digest[:8], "little") >> 1)


def child_seed(gen: torch.Generator) -> int:
    """Draw a fresh 63-bit seed from ``gen`` (for a sub-task that needs its own generator)."""
    return int(torch.randint(0, 2**62, (1,), generator=gen).item())


def child_generator(gen: torch.Generator) -> torch.Generator:
    return make_generator(child_seed(gen))
