"""An agent's tool behind a human approval: LangChain's `@tool` over `require_approval`, in process.

The model is a deterministic stub (langchain-core's FakeMessagesListChatModel), so this runs offline;
a real chat model with `.bind_tools([send_email])` changes nothing else.
"""

import asyncio

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from hitl_streams import Hitl
from hitl_streams.client import ApprovalDenied, ApprovalTimedOut, require_approval

hitl = Hitl()  # Hitl(state=StreamState(redis)) in production: every decision in the audit trail


@tool
@require_approval(hitl.client(), timeout="15m")
async def send_email(to: str, subject: str) -> str:
    """Send an email to a customer."""
    return f"Sent {subject!r} to {to}"


model = FakeMessagesListChatModel(
    responses=[
        AIMessage(
            content="",
            tool_calls=[{"name": "send_email", "args": {"to": "ana@example.com", "subject": "Invoice"}, "id": "c1"}],
        ),
        AIMessage(content="Done: Ana has her invoice."),
    ]
)


async def agent(task: str) -> list[BaseMessage]:
    messages: list[BaseMessage] = [HumanMessage(task)]
    while True:
        reply = await model.ainvoke(messages)
        messages.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            return messages
        for call in reply.tool_calls:
            try:
                messages.append(await send_email.ainvoke(call))
            except (ApprovalDenied, ApprovalTimedOut) as refused:  # the model learns it was not allowed
                messages.append(ToolMessage(content=f"Not allowed: {refused}", tool_call_id=call["id"]))


async def reviewer() -> None:
    """Stands in for a person refreshing the inbox: corrects the subject, then approves."""
    for _ in range(500):
        page = await hitl.inbox.list(status="pending")
        if page.items:
            print("reviewer sees:", page.items[0].message)
            await hitl.inbox.resolve(page.items[0].id, action_id="approve", feedbacks={"subject": "Invoice #42"})
            return
        await asyncio.sleep(0.01)


async def main() -> None:
    review = asyncio.create_task(reviewer())
    messages = await agent("Email Ana her invoice")
    await review
    for message in messages:
        print(f"{type(message).__name__}: {message.content}")


asyncio.run(main())
