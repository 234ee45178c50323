"""In process: a script (or notebook, or agent loop) that runs the Hitl itself and asks a human."""

import asyncio

from hitl_streams import Hitl, actions, field, is_resolved
from hitl_streams.client import remind

hitl = Hitl()  # InMemoryState; Hitl(state=StreamState(redis)) keeps requests across restarts
client = hitl.client()


async def reviewer(request_id: str) -> None:
    """Stands in for a person deciding in the web inbox or a chat channel."""
    await asyncio.sleep(0.1)
    await hitl.inbox.resolve(request_id, action_id="approve", feedbacks={"note": "ship it"})


async def main() -> None:
    pending = await client.request_human(
        message="Deploy api v2 to production?",
        actions=actions().approve(fields={"note": field.text(label="Note", default="")}).deny().build(),
        context={"service": "api", "version": "2.0.0"},
    )
    review = asyncio.create_task(reviewer(pending.id))
    result = await client.wait_for_human(pending, timeout="10m", reminders=[remind.after("5m")])
    await review
    if is_resolved(result, "approve"):
        await client.notify(message="Deploying now", after=result)
        print("approved:", result.feedbacks["note"])


asyncio.run(main())
