"""Reading and splitting the dump on a thread while the server runs what came before.

The loader's own Python work (decoding, finding statement boundaries) takes a
quarter of a big load; done on a producer thread it overlaps with the time the
loading thread waits for the server (pymysql releases the GIL while it waits
on the socket). At most ``depth`` statements are held ahead, so memory stays
flat. After an item for which ``pause`` says so (a ``SET sql_mode``), the
producer waits until the consumer calls :meth:`Prefetch.resume`, so the
splitter's settings can follow the server before more is split.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_ITEM, _END, _ERROR = range(3)


class Prefetch(Generic[T]):
    """Iterate over ``items``, produced up to ``depth`` ahead on another thread.

    Use as a context manager: leaving it stops and joins the producer, also when
    the consumer stops early. An exception of the producer is raised in the consumer.
    """

    def __init__(self, items: Iterator[T], depth: int, pause: Callable[[T], bool]) -> None:
        self._items = items
        self._pause = pause
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="reel-dump-reader", daemon=True)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._resume.set()
        self._thread.join()

    def resume(self) -> None:
        """Let the producer go on after a pausing item."""
        self._resume.set()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]

    def _produce(self) -> None:
        try:
            for item in self._items:
                pausing = self._pause(item)
                if pausing:
                    self._resume.clear()
                if not self._put((_ITEM, item)):
                    return
                if pausing:
                    self._resume.wait()
                    if self._stop.is_set():
                        return
            self._put((_END, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put((_ERROR, exc))

    def _put(self, entry: tuple[int, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False
