from edge.faults import MAX_LINES_PER_KIND, FaultLog


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, fmt: str, *args: object) -> None:
        self.lines.append(fmt.format(*args))


def test_each_distinct_fault_once_and_floods_capped() -> None:
    rec = Recorder()
    faults = FaultLog(rec)
    for _ in range(100):
        faults("bad message", "malformed JSON")
    faults("bad message", "unknown message type 'x'")
    assert rec.lines == ["bad message: malformed JSON", "bad message: unknown message type 'x'"]
    for i in range(100):
        faults("bad frame", f"frame {i}")
    assert sum("bad frame" in line for line in rec.lines) == MAX_LINES_PER_KIND + 1
    assert faults.summary() == "bad frame×100, bad message×101"


def test_fault_lines_are_bounded_and_cannot_forge_lines() -> None:
    rec = Recorder()
    faults = FaultLog(rec)
    faults("bad message", "unknown message type " + "x" * 60_000)
    faults("bad message", "malformed JSON: 'a\nFAKE LOG LINE'")
    long, forged = rec.lines
    assert len(long) < 300 and long.endswith("(60021 chars)")
    assert "\n" not in forged and "\\x0a" in forged


def test_distinct_faults_remembered_are_bounded() -> None:
    rec = Recorder()
    faults = FaultLog(rec)
    for i in range(10_000):
        faults(f"kind {i % 7}", f"detail {i}")
    assert len(faults._seen) <= 256 and sum(faults.counts.values()) == 10_000
    assert len(rec.lines) <= 7 * (MAX_LINES_PER_KIND + 1)
