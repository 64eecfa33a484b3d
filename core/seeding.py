"""Seeded generators. Every random draw in mmdd comes from a generator passed down."""

from __future__ import annotations

import torch


def make_generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def child_seed(gen: torch.Generator) -> int:
    """Draw a fresh 63-bit seed from ``gen`` (for a sub-task that needs its own generator)."""
    return int(torch.randint(0, 2**62, (1,), generator=gen).item())


def child_generator(gen: torch.Generator) -> torch.Generator:
    return make_generator(child_seed(gen))
