"""Content moderation: several checks of a post at once, then one aggregated decision.

::

    check_toxicity --+
    check_image -----+
    check_spam ------+--> decide --> publish_decision
    check_pii -------+

The checks call fake services with realistic latency (a text classifier, an image
scanner, a user database); ``decide`` weighs their scores with thresholds from
``ctx.config``; ``publish_decision`` puts the verdict on a message queue. Three
posts are moderated concurrently, each in its own run of the same workflow.

Run it: ``python examples/moderation.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import structlog

from actors import Engine, Workflow

# -- fake services ------------------------------------------------------------------

TOXIC_WORDS = {"idiot": 0.7, "stupid": 0.5, "hate": 0.6, "trash": 0.4}
AUTHORS = {
    "ada": {"account_age_days": 1200, "prior_strikes": 0, "posts_last_hour": 1},
    "bob": {"account_age_days": 400, "prior_strikes": 0, "posts_last_hour": 2},
    "spammer99": {"account_age_days": 1, "prior_strikes": 2, "posts_last_hour": 40},
}


async def classify_text(text: str) -> dict[str, Any]:
    """A text-classification API (think Perspective): toxicity in [0, 1] with labels."""
    await anyio.sleep(0.08)
    hits = {w: s for w, s in TOXIC_WORDS.items() if w in text.lower()}
    score = min(1.0, sum(hits.values()))
    return {"toxicity": round(score, 2), "labels": sorted(hits), "model": "toxic-v3"}


async def scan_image(url: str) -> dict[str, Any]:
    """An image-moderation API: probabilities per category."""
    await anyio.sleep(0.12)
    flagged = "nsfw" in url
    return {"url": url, "categories": {"adult": 0.93 if flagged else 0.01, "violence": 0.02}}


async def author_reputation(author: str) -> dict[str, Any]:
    """A user-database lookup."""
    await anyio.sleep(0.03)
    return AUTHORS.get(author, {"account_age_days": 0, "prior_strikes": 0, "posts_last_hour": 0})


class FakeQueue:
    """A message queue: ``publish(topic, message)`` returns a message id."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, topic: str, message: dict[str, Any]) -> str:
        await anyio.sleep(0.01)
        self.messages.append((topic, message))
        return f"msg-{len(self.messages)}"


# -- the workflow ---------------------------------------------------------------------

wf = Workflow("moderate_post")


@wf.step(timeout=5.0)
def check_toxicity() -> None:
    """
    const result = await classify_text(ctx.event.text);
    const reason = result.labels.length ? `toxic: ${result.labels.join(", ")}` : null;
    return { score: result.toxicity, reason };
    """


@wf.step(timeout=5.0)
def check_image() -> None:
    """
    if (!ctx.event.image_url) return { score: 0, reason: null };
    const { categories } = await scan_image(ctx.event.image_url);
    const score = Math.max(...Object.values(categories));
    return { score, reason: score > 0.5 ? "image flagged" : null };
    """


@wf.step(timeout=5.0)
def check_spam() -> None:
    """
    const author = await author_reputation(ctx.event.author);
    const links = (ctx.event.text.match(/https?:\\/\\//g) || []).length;
    let score = Math.min(1, links * 0.2 + author.posts_last_hour / 50);
    if (author.account_age_days < 7) score = Math.min(1, score + 0.3);
    const reasons = [];
    if (links >= 3) reasons.push(`${links} links`);
    if (author.posts_last_hour > 20) reasons.push(`${author.posts_last_hour} posts in an hour`);
    const reason = reasons.length ? `spam: ${reasons.join(", ")}` : null;
    return { score: Math.round(score * 100) / 100, reason };
    """


@wf.step()
def check_pii() -> None:
    """
    const found = [];
    if (/[\\w.+-]+@[\\w-]+\\.[\\w.]+/.test(ctx.event.text)) found.push("email address");
    if (/\\+?\\d[\\d -]{8,}\\d/.test(ctx.event.text)) found.push("phone number");
    if (!found.length) return { score: 0, reason: null };
    return { score: 0.6, reason: `pii: ${found.join(", ")}` };
    """


@wf.step(after=[check_toxicity, check_image, check_spam, check_pii])
def decide() -> None:
    """
    const { weights, review_at, reject_at } = ctx.config;
    const checks = Object.entries(deps);
    // The worst single check decides, unless a weighted average is worse.
    const worst = Math.max(...checks.map(([name, c]) => c.score * weights[name]));
    const total = checks.reduce((sum, [name, c]) => sum + c.score * weights[name], 0);
    const score = Math.round(Math.max(worst, total / checks.length) * 100) / 100;
    const decision = score >= reject_at ? "reject" : score >= review_at ? "review" : "approve";
    const reasons = checks.map(([, c]) => c.reason).filter(Boolean);
    return { post_id: ctx.event.id, decision, score, reasons };
    """


@wf.step(after=[decide])
def publish_decision() -> None:
    """
    const message_id = await publish("moderation.decisions", deps.decide);
    return { ...deps.decide, message_id };
    """


POSTS = [
    {"id": "p-1", "author": "ada", "text": "Lovely write-up on the analytical engine, thanks!"},
    {
        "id": "p-2",
        "author": "bob",
        "text": "Selling my bike, mail me at bob@example.com",
        "image_url": "https://img.example/bike.jpg",
    },
    {
        "id": "p-3",
        "author": "spammer99",
        "text": "You idiot, this is trash. Buy now http://a.example http://b.example http://c.example",
        "image_url": "https://img.example/nsfw-ad.png",
    },
]
CONFIG = {
    "weights": {"check_toxicity": 1.0, "check_image": 1.0, "check_spam": 0.9, "check_pii": 0.8},
    "review_at": 0.4,
    "reject_at": 0.8,
}


async def main() -> int:
    queue = FakeQueue()
    api = {
        "classify_text": classify_text,
        "scan_image": scan_image,
        "author_reputation": author_reputation,
        "publish": queue.publish,
    }
    async with Engine(api=api, context={"config": CONFIG}) as engine:
        handles = [await engine.start(wf, event=post) for post in POSTS]  # all at once
        results = [await handle.wait() for handle in handles]

    print(f"{'post':<5} {'decision':<9} {'score':>5}  reasons")
    for result in results:
        if result.status != "completed":
            print(f"run failed: {[str(result.steps[s].error) for s in result.failed_steps]}")
            return 1
        out = result.output
        print(f"{out['post_id']:<5} {out['decision']:<9} {out['score']:>5.2f}  ", end="")
        print("; ".join(out["reasons"]) or "-")
    print(f"{len(queue.messages)} decisions published to {queue.messages[0][0]}")
    return 0


if __name__ == "__main__":
    # Library logs (worker start-up, ...) go to stderr, warnings and up only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    sys.exit(anyio.run(main))
