"""`random_hex`: ids from a buffer of os.urandom bytes, unique, and never shared with a forked child."""

from __future__ import annotations

import os

from hitl_streams._random import random_hex


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
