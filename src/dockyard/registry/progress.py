"""Progress of a pull or push, as small event values.

``pull`` and ``push`` call ``progress(event)`` for every step (from worker
threads too, but never two calls at once); printing is the CLI's business.
``Event.id`` is a layer's short digest, or the reference for whole-image
events. ``Event.text`` is Docker's wording for the step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Event", "Listener", "locked", "short"]

# pull
RESOLVING = "resolving"          # id: the reference
WAITING = "waiting"
DOWNLOADING = "downloading"      # current/total bytes
VERIFYING = "verifying"
EXTRACTING = "extracting"
PULL_COMPLETE = "pull-complete"
ALREADY_EXISTS = "already-exists"
DIGEST = "digest"                # detail: the manifest digest
STATUS = "status"                # detail: a closing sentence
# push
PREPARING = "preparing"
COMPRESSING = "compressing"
PUSHING = "pushing"              # current/total bytes
PUSHED = "pushed"
LAYER_EXISTS = "layer-exists"
MOUNTED = "mounted"              # detail: the source repository

_TEXT = {
    RESOLVING: "Resolving",
    WAITING: "Waiting",
    DOWNLOADING: "Downloading",
    VERIFYING: "Verifying Checksum",
    EXTRACTING: "Extracting",
    PULL_COMPLETE: "Pull complete",
    ALREADY_EXISTS: "Already exists",
    PREPARING: "Preparing",
    COMPRESSING: "Compressing",
    PUSHING: "Pushing",
    PUSHED: "Pushed",
    LAYER_EXISTS: "Layer already exists",
    MOUNTED: "Mounted from",
}
# the last event of a layer: plain output prints one line per layer from these
FINAL = frozenset({PULL_COMPLETE, ALREADY_EXISTS, PUSHED, LAYER_EXISTS, MOUNTED})


@dataclass(frozen=True)
class Event:
    action: str
    id: str
    current: int = 0
    total: int | None = None
    detail: str = ""

    @property
    def final(self) -> bool:
        return self.action in FINAL

    @property
    def is_layer(self) -> bool:
        return self.action not in (RESOLVING, DIGEST, STATUS)

    @property
    def text(self) -> str:
        if self.action in (DIGEST, STATUS):
            return self.detail
        words = _TEXT.get(self.action, self.action)
        if self.action == MOUNTED:
            return f"{words} {self.detail}"
        if self.action in (DOWNLOADING, PUSHING, EXTRACTING) and self.total:
            return f"{words} {_size(self.current)}/{_size(self.total)}"
        return f"{words} {self.detail}".rstrip()


Listener = Callable[[Event], None]


def locked(listener: Listener | None) -> Listener:
    """Serialise calls from worker threads; None becomes a no-op."""
    if listener is None:
        return lambda event: None
    lock = threading.Lock()

    def call(event: Event) -> None:
        with lock:
            listener(event)
    return call


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"
