from __future__ import annotations

import asyncio

from edge.process import MemoryTrimmer
from edge.workers import Worker
from tests.helpers import wait_until


async def test_memory_is_given_back_after_a_conversation_at_most_every_ten_seconds() -> None:
    io = Worker("io-test", threads=1)
    trimmer = MemoryTrimmer(io)
    try:
        assert trimmer._libc is not None  # glibc here, as on the boards (Raspberry Pi OS)
        junk = [bytearray(64 * 1024) for _ in range(200)]  # freed heap for the trim to return
        del junk
        await trimmer.after_conversation()
        await trimmer.after_conversation()  # a second device leaving just after: no new trim
        assert trimmer.trims == 1
        assert io.threads_started == 1  # in the worker's thread, never on the event loop
        trimmer._last -= 10.0
        await trimmer.after_conversation()
        assert trimmer.trims == 2
    finally:
        io.shutdown()


def test_the_open_files_limit_is_lifted_to_the_hard_limit() -> None:
    import resource

    from edge.process import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        before, after = raise_open_files_limit()
        assert before == min(256, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == after >= before
        if hard != resource.RLIM_INFINITY:
            assert after == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_line_is_logged_before_the_open_files_limit_is_reached(log_lines) -> None:  # type: ignore[no-untyped-def]
    from edge.process import OpenFilesWatch, open_files

    in_use = open_files()
    assert in_use is not None
    assert not OpenFilesWatch(limit=in_use * 4).check()  # a quarter used: nothing to say
    near = OpenFilesWatch(limit=in_use + 2)
    assert near.check()
    assert not near.check()  # once a minute at most, not on every look
    assert any(
        f"{in_use} of {in_use + 2} file descriptors" in line["message"] for line in log_lines
    )


async def test_memory_is_given_back_once_more_when_the_server_has_gone_quiet() -> None:
    # The conversation's own trim comes before its summary and read-ahead free their buffers;
    # a second trim follows once no device talks and the model has been idle a while.
    io = Worker("io-test", threads=1)
    talking = [True]
    model_idle = [0.0]
    trimmer = MemoryTrimmer(io, quiet=lambda: not talking[0], model_idle=lambda: model_idle[0])
    try:
        await trimmer.after_conversation()
        assert trimmer.trims == 1 and not trimmer.at_rest()  # the model still works
        trimmer._last -= 20.0  # as if the trim were 20 s old, the model busy since
        assert not trimmer.due()  # a device still talks
        talking[0] = False
        assert not trimmer.due()  # ... and the model ran just now
        model_idle[0] = 6.0
        assert trimmer.due() and not trimmer.at_rest()
        task = asyncio.create_task(trimmer.run(every_s=0.01))
        for _ in range(500):
            if trimmer.trims == 2:
                break
            await asyncio.sleep(0.01)
        assert trimmer.trims == 2 and trimmer.at_rest()
        await asyncio.sleep(0.05)
        assert trimmer.trims == 2  # nothing more to give back until more work is done
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        io.shutdown()


async def test_memory_freed_while_loading_the_models_is_given_back_once_quiet() -> None:
    # Loading leaves ~100 MB freed but held (model files read, warm-up buffers): a server that
    # has not served anyone yet is not at rest until that is given back.
    io = Worker("io-test", threads=1)
    trimmer = MemoryTrimmer(io)
    try:
        assert trimmer.due() and not trimmer.at_rest()
        task = asyncio.create_task(trimmer.run(every_s=0.01))
        await wait_until(lambda: trimmer.trims, limit=5.0)
        assert trimmer.trims == 1 and trimmer.at_rest()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        io.shutdown()


async def test_once_quiet_what_is_kept_on_disk_is_let_go_before_the_trim() -> None:
    io = Worker("io-test", threads=1)
    order: list[str] = []

    async def shed() -> int:
        order.append(f"shed after {trimmer.trims} trims")
        return 1000

    trimmer = MemoryTrimmer(io, shed=shed)
    try:
        task = asyncio.create_task(trimmer.run(every_s=0.01))
        await wait_until(lambda: trimmer.trims, limit=5.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert order == ["shed after 0 trims"] and trimmer.trims == 1
    finally:
        io.shutdown()
