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
