"""shared.jetstream (nats-py's publish_async with a deadline) against a real NATS JetStream: stored, deduplicated, refused, unacked."""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import ConnectionReconnectingError
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError

from shared.jetstream import JetStreamPublisher, NotStored


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def stream(nc: NATS) -> AsyncIterator[str]:
    """A stream of this test's own (subjects `<name>.>`), small messages only."""
    name = f"probe{secrets.token_hex(4)}"
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=name.upper(), subjects=[f"{name}.>"], duplicate_window=60, max_msg_size=1024
        )
    )
    yield name
    await js.delete_stream(name.upper())


@pytest.fixture
async def publisher(nc: NATS) -> AsyncIterator[JetStreamPublisher]:
    publisher = JetStreamPublisher(nc, ack_timeout=0.3)
    await publisher.start()
    yield publisher
    await publisher.stop()


def headers(msg_id: str | None = None) -> dict[str, str]:
    return {"Nats-Msg-Id": msg_id or str(uuid.uuid4()), "Content-Type": "application/json"}


async def test_each_message_resolves_to_its_sequence_in_the_stream(nc, stream, publisher):
    acks = [
        await publisher.publish(f"{stream}.thing.happened", b'{"n": %d}' % n, headers())
        for n in range(3)
    ]
    assert [ack.seq for ack in await asyncio.gather(*acks)] == [1, 2, 3]
    stored = await nc.jetstream().get_msg(stream.upper(), 2)
    assert stored.data == b'{"n": 1}'
    assert stored.headers["Content-Type"] == "application/json"
    assert publisher.waiting == 0


async def test_a_second_publish_of_one_message_id_is_acked_and_stored_once(nc, stream, publisher):
    msg_id = str(uuid.uuid4())
    first = await publisher.publish(f"{stream}.a", b"once", headers(msg_id))
    again = await publisher.publish(f"{stream}.a", b"once", headers(msg_id))
    stored = await asyncio.gather(first, again)
    assert [ack.seq for ack in stored] == [1, 1]
    assert stored[1].duplicate
    assert (await nc.jetstream().stream_info(stream.upper())).state.messages == 1


async def test_nats_py_still_leaves_a_refused_publish_async_unresolved(stream, publisher):
    # nats-io/nats.py#985: `publish_async` never resolves the ack of a message JetStream
    # refused, so the relay gives it up after its time and the sweep (`js.publish`) records why.
    # When this fails, nats-py resolves it: the sweep's separate path can go.
    too_big = await publisher.publish(f"{stream}.a", b"x" * 2048, headers())
    await asyncio.sleep(0.4)
    assert not too_big.done()
    assert publisher.expire() == 1


async def test_a_message_larger_than_the_server_takes_fails_its_ack_and_sends_nothing(
    nc, stream, publisher
):
    # Payload within max_payload, headers past it: the server would drop the connection.
    past = await publisher.publish(f"{stream}.a", b"x" * (nc.max_payload - 10), headers())
    with pytest.raises(NotStored, match="more than the server takes"):
        await past
    assert publisher.waiting == 0
    assert nc.is_connected
    assert (await (await publisher.publish(f"{stream}.a", b"fits", headers()))).seq == 1


async def test_a_subject_no_stream_takes_fails_its_ack(publisher):
    nowhere = await publisher.publish(f"nowhere{secrets.token_hex(4)}.a", b"{}", headers())
    with pytest.raises(NoStreamResponseError):
        await nowhere


@pytest.fixture
async def silent_subject(nc: NATS) -> AsyncIterator[str]:
    """A subject someone listens on who is not JetStream: a publish to it is never acked."""
    subject = f"silent{secrets.token_hex(4)}.a"
    listener = await nc.subscribe(subject)
    yield subject
    await listener.unsubscribe()


async def test_an_ack_that_never_comes_is_given_up_after_its_time(silent_subject, publisher):
    unanswered = await publisher.publish(silent_subject, b"{}", headers())
    assert publisher.expire() == 0
    await asyncio.sleep(0.4)
    assert publisher.expire() == 1
    assert unanswered.cancelled()
    assert publisher.waiting == 0


async def test_an_ack_its_caller_gave_up_on_is_forgotten_not_counted_again(
    silent_subject, publisher
):
    # The sweep gives up the acks it waited for too long and logs them; expiry must not count
    # (and log) them a second time.
    given_up = await publisher.publish(silent_subject, b"{}", headers())
    unanswered = await publisher.publish(silent_subject, b"{}", headers())
    given_up.cancel()
    await asyncio.sleep(0.4)
    assert publisher.expire() == 1
    assert unanswered.cancelled()
    assert publisher.waiting == 0


async def test_stopping_gives_up_the_acks_still_awaited(nc, silent_subject):
    publisher = JetStreamPublisher(nc, ack_timeout=30)
    await publisher.start()
    try:
        unanswered = await publisher.publish(silent_subject, b"{}", headers())
    finally:
        await publisher.stop()
    assert unanswered.cancelled()
    with pytest.raises(RuntimeError, match="not started"):
        await publisher.publish(silent_subject, b"{}", headers())


async def test_nothing_is_published_while_the_connection_is_down(nats_url):
    # A publish_async that raises leaves its place among the pending taken for good.
    client = await nats.connect(nats_url)
    publisher = JetStreamPublisher(client, ack_timeout=0.3)
    await publisher.start()
    await client.close()
    with pytest.raises(ConnectionReconnectingError):
        await publisher.publish("anything.a", b"{}", headers())
    assert publisher.waiting == 0
