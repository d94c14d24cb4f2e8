"""`edge bench vad`: what the VAD hang-over (`vad.end_silence_ms`) costs in words cut off.

A shorter hang-over answers sooner, but a speaker who pauses longer than it mid-sentence is cut
off: the turn ends at the pause and the words after it are lost. For each hang-over, every
shipped recording of real speech (each holds a natural pause: Beckett's between two sentences,
Dickens' at commas) is fed frame by frame as a device sends it; the first segment is what the
turn would answer. Words cut off = words of the whole recording's transcript missing from the
first segment's transcript.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np

from edge.audio.pcm import to_float
from edge.bench.floor import first_segments
from edge.bench.utterances import RATE, recorded, words
from edge.config import load
from edge.engines.loader import load_engines, resolve_models
from edge.engines.vad import VadDetector

HANGOVERS_MS = (200, 300, 400, 500, 600, 700, 800)
FRAME = RATE * 60 // 1000


async def run() -> dict[str, Any]:
    config = load(None)
    engines = await load_engines(config)
    vad_model = resolve_models(config).vad
    try:
        speech = recorded()
        full = {u.name: await engines.asr.transcribe(to_float(u.pcm)) for u in speech}
        rows = []
        for hangover in HANGOVERS_MS:
            vad = config.vad.replace(end_silence_ms=hangover)
            cut_clips, lost, total, delays = 0, 0, 0, []
            for utterance in speech:
                detector = VadDetector(vad_model, vad)
                vad_outcome = first_segments(detector, utterance.pcm, FRAME, silence_s=3.0)
                segments, delay = vad_outcome.segments, vad_outcome.delay
                heard = await engines.asr.transcribe(segments[0]) if segments else ""
                reference = words(full[utterance.name])
                missing = max(0, len(reference) - len(words(heard)))
                total += len(reference)
                lost += missing
                cut_clips += delay < 0
                delays.append(delay)
            rows.append(
                {
                    "end_silence_ms": hangover,
                    "recordings_cut": cut_clips,
                    "recordings": len(speech),
                    "words_cut_off": lost,
                    "words": total,
                    "share_cut_off": lost / total if total else 0.0,
                    "decision_after_speech_ms": 1000
                    * float(np.median([d for d in delays if d >= 0] or [0])),
                }
            )
        return {"transcripts": full, "rows": rows}
    finally:
        engines.close()


def main(as_json: bool) -> int:
    from loguru import logger

    logger.remove()
    report = asyncio.run(run())
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'hang-over':>10} {'decided after':>14} {'recordings cut':>15} {'words cut off':>14}")
    for row in report["rows"]:
        print(
            f"{row['end_silence_ms']:>7} ms {row['decision_after_speech_ms']:>11.0f} ms "
            f"{row['recordings_cut']:>8}/{row['recordings']:<6} "
            f"{row['words_cut_off']:>7}/{row['words']} ({100 * row['share_cut_off']:.0f} %)"
        )
    return 0
