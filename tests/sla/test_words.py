"""The vocabulary of names people write for codes, made once per context."""

from __future__ import annotations

from monitor.sla.service import SlaContext
from monitor.sla.words import words


def test_the_vocabulary_follows_the_contexts_catalog(ctx: SlaContext) -> None:
    assert words(ctx).pool("政务一云") == "pool1"
    assert words(ctx) is words(ctx)  # made once for the context
    pools = [
        p.model_copy(update={"name": "市政务外网云"}) if p.id == "pool1" else p
        for p in ctx.catalog.pools
    ]
    ctx.catalog = ctx.catalog.model_copy(update={"pools": pools})
    assert words(ctx).pool("市政务外网云") == "pool1"
