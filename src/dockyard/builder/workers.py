"""A few threads for file work that mostly waits on the kernel (creating
inodes, reading files): system calls release the GIL, so those waits overlap
even on a small machine."""

from __future__ import annotations

import threading

THREADS = 4
BATCH = 64      # items per hand-over; fewer than this stay in the caller's thread


class Workers:
    """Run `fn(batch)` for each batch put, in THREADS threads. `close` waits
    for all of them and raises the first error; after an error the batches
    still queued are skipped."""

    def __init__(self, fn, threads: int = THREADS):
        import queue

        self._fn = fn
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._errors:
                continue
            try:
                self._fn(batch)
            except BaseException as exc:  # handed to the caller by close()
                self._errors.append(exc)

    def put(self, batch: list) -> None:
        self._queue.put(batch)

    def close(self, *, check: bool = True) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        if check and self._errors:
            raise self._errors[0]


class Batcher:
    """Collects items; hands full batches to Workers (started on the first
    full batch) and does a last short batch itself if no thread was needed."""

    def __init__(self, fn):
        self._fn = fn
        self._items: list = []
        self._workers: Workers | None = None

    def add(self, item) -> None:
        self._items.append(item)
        if len(self._items) >= BATCH:
            if self._workers is None:
                self._workers = Workers(self._fn)
            self._workers.put(self._items)
            self._items = []

    def finish(self) -> None:
        """Wait until everything added is done (errors raised here)."""
        items, self._items = self._items, []
        try:
            if items:
                if self._workers is None:
                    self._fn(items)
                else:
                    self._workers.put(items)
        finally:
            workers, self._workers = self._workers, None
            if workers is not None:
                workers.close()

    def abandon(self) -> None:
        """Stop after a failure elsewhere: wait for the threads, drop errors."""
        self._items = []
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.close(check=False)
