import asyncio

from edge.session.pacer import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _run_frames(pacer: Pacer, clock: FakeClock, count: int, sent: list[float]) -> None:
    async def send(_packet: bytes) -> bool:
        sent.append(clock.now)
        return True

    async def go() -> None:
        for _ in range(count):
            await pacer.send(send, b"x")

    asyncio.run(go())


def test_lead_then_real_time_on_an_absolute_schedule() -> None:
    clock = FakeClock()
    pacer = Pacer(60, 3, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    _run_frames(pacer, clock, 20, sent)
    start = sent[0]
    assert sent[:3] == [start] * 3  # the pre-buffer goes at once
    for k in range(3, 20):
        assert abs(sent[k] - (start + (k - 2) * 0.06)) < 1e-9
    # the device (playing from the first arrival) never holds more than `lead` frames
    for k, t in enumerate(sent):
        played = int((t - start) / 0.06 + 1e-9)
        assert k + 1 - played <= 3


def test_stall_reanchors_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(60, 2, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    _run_frames(pacer, clock, 5, sent)
    clock.now += 2.0  # synthesis stalled: the device has played everything
    _run_frames(pacer, clock, 5, sent)
    assert pacer.reanchors == 1
    resumed = sent[5]
    assert sent[5:7] == [resumed, resumed]  # a fresh pre-buffer, not a catch-up burst
    assert abs(sent[9] - (resumed + 3 * 0.06)) < 1e-9


def test_wait_played_waits_for_the_last_frame_and_margin() -> None:
    clock = FakeClock()
    pacer = Pacer(60, 3, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    _run_frames(pacer, clock, 10, sent)
    asyncio.run(pacer.wait_played(0.15))
    # the last frame finishes playing `lead` frames after it was sent; the protocol notes ask
    # for (lead + 1) frames before `tts stop`, plus the margin
    assert abs(clock.now - (sent[-1] + 4 * 0.06 + 0.15)) < 1e-9


def test_failed_send_is_not_counted() -> None:
    clock = FakeClock()
    pacer = Pacer(60, 0, clock=clock, sleep=clock.sleep)

    async def closed(_packet: bytes) -> bool:
        return False

    assert not asyncio.run(pacer.send(closed, b"x"))
    assert pacer.frames_sent == 0
