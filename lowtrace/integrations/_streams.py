"""Transparent proxies of a model client's stream that end the call's span exactly once.

The span ends when the stream is exhausted (OK), fails (ERROR, the same exception re-raised),
is closed early or dropped (OK, marked ``lowtrace.stream_closed_early``). What flows through
is handed to an accumulator that builds the reply recorded as the span's outputs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Protocol

from lowtrace.integrations._common import Run, finish_run

__all__ = ["Accumulator", "TracedAsyncStream", "TracedStream"]


class Accumulator(Protocol):
    """Sees every item of one streamed call and builds its outputs at the end."""

    run: Run

    def add(self, item: Any) -> None: ...

    def outputs(self) -> tuple[Any, dict[str, Any]]: ...


class _StreamBase:
    """Shared by the sync and async proxies: recording items, ending the span once."""

    def __init__(self, stream: Any, acc: Accumulator, where: str) -> None:
        self._stream = stream
        self._acc = acc
        self._where = where
        self._done = False
        self._lock = threading.Lock()

    def _record(self, item: Any) -> None:
        try:
            self._acc.add(item)
        except Exception as exc:  # noqa: BLE001 - never break the application
            self._acc.run.client.report_error(exc, self._where)

    def _finish(self, error: BaseException | None = None, early: bool = False) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        run = self._acc.run
        try:
            outputs, attributes = self._acc.outputs()
        except Exception as exc:  # noqa: BLE001 - never break the application
            run.client.report_error(exc, self._where)
            outputs, attributes = None, {}
        if early:
            attributes["lowtrace.stream_closed_early"] = True
        finish_run(run, outputs, error, attributes=attributes, where=self._where)

    def __getattr__(self, name: str) -> Any:
        try:
            stream = object.__getattribute__(self, "_stream")
        except AttributeError:  # half-built (copy, pickle): not an endless lookup of _stream
            raise AttributeError(name) from None
        return getattr(stream, name)

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            self._finish(early=True)


class TracedStream(_StreamBase):
    """A proxy of a synchronous stream (an iterator with ``close()`` and ``with``)."""

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._stream)
        except StopIteration:
            self._finish()
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._record(item)
        return item

    def __enter__(self) -> TracedStream:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._stream.__exit__(*exc_info)
        finally:
            self._finish(early=not self._done)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._finish(early=True)


class TracedAsyncStream(_StreamBase):
    """A proxy of an asynchronous stream (``async for``, ``await close()``, ``async with``)."""

    def __aiter__(self) -> TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._stream.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._record(item)
        return item

    async def __aenter__(self) -> TracedAsyncStream:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._stream.__aexit__(*exc_info)
        finally:
            self._finish(early=not self._done)

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            self._finish(early=True)
