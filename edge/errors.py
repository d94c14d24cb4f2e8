"""Every error edge raises on purpose, in one hierarchy.

Catch `EdgeError` to handle anything edge itself reports; catch a branch to handle one kind.
Errors of the libraries underneath (websockets, sqlite3, llama.cpp, onnxruntime) are not wrapped
here: a layer that can say what went wrong for the user raises one of these instead, and a layer
that cannot lets the library's error through to its caller's log line.

.. code-block:: text

    EdgeError
    ├── ConfigError              a setting that cannot be used; the message names the key
    ├── ProtocolError            bytes from a device that the protocol does not allow
    │   └── FramingError         a binary frame whose header does not match its size
    ├── AudioError
    │   └── OpusError            libopus refused a packet or a frame
    ├── ModelError               a model file missing, unknown or damaged
    │   └── DownloadError        a model download that failed (network, disk, digest)
    ├── EngineError              a loaded engine could not serve a call
    │   ├── EngineTimeout        it took longer than its time limit (also a TimeoutError)
    │   ├── EngineBusy           too many requests already wait for it
    │   ├── ContextFull          the conversation needs more context than the model has
    │   ├── Preempted            background work (a summary) gave way to a live turn
    │   └── LlmUnavailable       the remote (OpenAI-compatible) model server failed
    ├── ToolError                a tool call that did not work; the model hears an apology
    │   ├── ToolArgumentError    arguments that do not fit the tool's schema (repairable)
    │   ├── ToolTimeout          the tool did not answer in time
    │   └── DeviceMcpError       the device's MCP server answered with an error
    │       └── DeviceMcpTimeout
    └── SimError                 the simulated device saw the server break the protocol

Some classes also derive from the built-in they refine (`ValueError`, `TimeoutError`), so code
that catches the built-in keeps working.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of every error edge raises on purpose."""


class ConfigError(EdgeError, ValueError):
    """A setting that cannot be used; the message names the key."""


class ProtocolError(EdgeError):
    """Input from a device that the xiaozhi protocol does not allow."""


class FramingError(ProtocolError, ValueError):
    """A binary frame whose header does not match its size or version."""


class AudioError(EdgeError):
    """Audio that cannot be encoded or decoded."""


class OpusError(AudioError):
    """libopus refused a packet (decoding) or a frame (encoding)."""


class ModelError(EdgeError):
    """A model file that is missing, unknown to the catalog, or damaged."""


class DownloadError(ModelError):
    """A model download that failed: network, disk space, or a digest that does not match."""


class EngineError(EdgeError):
    """A loaded engine (VAD, ASR, LLM, TTS) could not serve a call."""


class EngineTimeout(EngineError, TimeoutError):
    """A call took longer than its time limit (counted from when it started running)."""


class EngineBusy(EngineError):
    """More requests wait for the engine than it queues: refused at once."""


class ContextFull(EngineError):
    """The running conversations need more KV cells than the model's context has."""


class Preempted(EngineError):
    """Background work (a summary) gave its place at the model to a live turn; try later."""


class LlmUnavailable(EngineError):
    """The OpenAI-compatible model server elsewhere on the LAN failed or is unreachable."""


class ToolError(EdgeError):
    """A tool call that did not work. The user hears a fixed apology, never a made-up success."""


class ToolArgumentError(ToolError):
    """The arguments do not fit the tool's JSON schema: the model may try once more."""


class ToolTimeout(ToolError):
    """The tool did not answer in time."""


class DeviceMcpError(ToolError):
    """The device's MCP server answered a call with an error."""


class DeviceMcpTimeout(DeviceMcpError, ToolTimeout):
    """The device did not answer a tool call in time."""


class SimError(EdgeError):
    """The simulated device saw the server break the protocol (e.g. a hello without transport)."""
