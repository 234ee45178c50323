"""`random_hex`, `random_base64` and `random_uuid4`: ids from a buffer of os.urandom bytes, unique, and
never shared with a forked child."""

from __future__ import annotations

import base64
import os
import uuid
from collections import Counter

from hitl_streams._random import random_base64, random_hex, random_uuid4


def test_ids_have_the_asked_size_and_do_not_repeat_across_buffer_refills() -> None:
    ids = [random_hex(12) for _ in range(2000)]  # about six refills of the 4 KiB buffer
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert len(random_hex(5000)) == 10000  # more than one buffer at once


def test_a_forked_child_does_not_reuse_the_parents_buffer() -> None:
    random_hex(12)  # the buffer is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.close(read)
        os.write(write, random_hex(12).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 24 and child != random_hex(12)


def test_uuid4_strings_are_version_4_rfc_variant_and_do_not_repeat() -> None:
    ids = [random_uuid4() for _ in range(4000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    # The variant digit is 8, 9, a or b, each about as often: its two random bits are kept.
    digits = Counter(text[19] for text in ids)
    assert set(digits) == set("89ab") and min(digits.values()) > 800


def test_base64_ids_are_text_of_the_asked_bytes_and_do_not_repeat() -> None:
    ids = [random_base64(12) for _ in range(2000)]
    assert all(len(i) == 16 and len(base64.b64decode(i, validate=True)) == 12 for i in ids)
    assert len(set(ids)) == len(ids)
