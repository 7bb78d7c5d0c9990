"""``@lowtrace.trace``: a span around every call of a function, invisible to its callers.

Works on functions, coroutine functions, generators and async generators, methods,
classmethods and staticmethods. Arguments become the inputs (by parameter name, without
``self``/``cls``), the return value the outputs; an exception is recorded and re-raised as
the same object. A traced generator keeps the full protocol (``send``, ``throw``, ``close``,
its return value); its span stays open while the consumer iterates, records the yielded
items (each also as a ``chunk`` event with its index; ``output_reducer`` turns the list of
items into the outputs, as in MLflow), ends when the generator finishes, is closed or
dropped, and is current only while the generator's own code runs, never in the consumer's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, overload

from lowtrace._client import TracingClient
from lowtrace._scope import Scope
from lowtrace._types import SpanType

__all__ = ["trace"]

F = TypeVar("F", bound=Callable[..., Any])
_MAX_ITEMS = 1000  # yielded items recorded per generator span; the rest are counted
_WHERE = "lowtrace.trace"


def _inputs_of(func: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """A function mapping a call's arguments to inputs by parameter name (self/cls left out)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return lambda args, kwargs: {"args": list(args), "kwargs": kwargs}
    params = list(signature.parameters)
    skip = params[0] if params and params[0] in ("self", "cls") else None
    # Fast path: a call passing every parameter positionally needs no Signature.bind.
    plain = all(
        p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in signature.parameters.values()
    )
    count = len(params)
    start = 1 if skip is not None else 0
    names = params[start:]

    def inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if plain and not kwargs and len(args) == count:
            return dict(zip(names, args[start:], strict=True))
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:  # the call itself will raise it, unchanged
            return {"args": list(args), "kwargs": kwargs}
        bound.apply_defaults()
        return {k: v for k, v in bound.arguments.items() if k != skip}

    return inputs


Reducer = Callable[[list[Any]], Any]


class _Items:
    """The yielded items of a generator span (the first ``_MAX_ITEMS``, then a count; all
    of them for an ``output_reducer``), each also recorded as a ``chunk`` event."""

    __slots__ = ("count", "items", "reducer", "scope")

    def __init__(self, scope: Scope, reducer: Reducer | None) -> None:
        self.items: list[Any] = []
        self.count = 0
        self.scope = scope
        self.reducer = reducer

    def add(self, item: Any) -> None:
        index = self.count
        self.count += 1
        if self.count <= _MAX_ITEMS or self.reducer is not None:
            self.items.append(item)
        try:
            self.scope.span.add_event("chunk", {"index": index, "value": item})
        except Exception as exc:  # noqa: BLE001 - tracing never breaks the application
            self.scope.client.report_error(exc, _WHERE)

    @property
    def outputs(self) -> Any:
        """What the span's outputs are: the items, or what the reducer makes of them."""
        if self.reducer is None:
            return self.items
        try:
            return self.reducer(list(self.items))
        except Exception as exc:  # noqa: BLE001 - a failing reducer must not break the caller
            self.scope.client.report_error(exc, f"{_WHERE} output_reducer")
            return self.items[:_MAX_ITEMS]

    def attributes(self, early: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"lowtrace.yielded_items": self.count}
        if early:
            out["lowtrace.generator_closed_early"] = True
        return out


def _wrap_function(func: Callable[..., Any], open_scope: Callable[..., Scope | None]) -> Any:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        scope = open_scope(args, kwargs)
        if scope is None:
            return func(*args, **kwargs)
        token = scope.enter()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            scope.leave(token)
            scope.close(error=exc)
            raise
        scope.leave(token)
        scope.close(outputs=result)
        return result

    return traced


def _wrap_coroutine(func: Callable[..., Any], open_scope: Callable[..., Scope | None]) -> Any:
    @functools.wraps(func)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        scope = open_scope(args, kwargs)
        if scope is None:
            return await func(*args, **kwargs)
        token = scope.enter()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            scope.leave(token)
            scope.close(error=exc)
            raise
        scope.leave(token)
        scope.close(outputs=result)
        return result

    return traced


def _wrap_generator(
    func: Callable[..., Any], open_scope: Callable[..., Scope | None], reducer: Reducer | None
) -> Any:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        gen = func(*args, **kwargs)  # only a bad call raises here: before any span exists
        scope = open_scope(args, kwargs)
        if scope is None:
            return (yield from gen)
        items = _Items(scope, reducer)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = scope.enter()  # current only while the generator's own code runs
            try:
                item = gen.send(sent) if thrown is None else gen.throw(thrown)
            except StopIteration as stop:
                scope.leave(token)
                scope.close(outputs=items.outputs, attributes=items.attributes(False))
                return stop.value
            except BaseException as exc:
                scope.leave(token)
                scope.close(error=exc, outputs=items.outputs, attributes=items.attributes(False))
                raise
            scope.leave(token)
            items.add(item)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:  # closed, or dropped and collected: end the span too
                token = scope.enter()
                try:
                    gen.close()
                finally:
                    scope.leave(token)
                    scope.close(outputs=items.outputs, attributes=items.attributes(True))
                raise
            except BaseException as exc:  # noqa: BLE001 - the consumer's throw(): forward it
                thrown = exc

    return traced


def _wrap_async_generator(
    func: Callable[..., Any], open_scope: Callable[..., Scope | None], reducer: Reducer | None
) -> Any:
    @functools.wraps(func)
    async def traced(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        agen = func(*args, **kwargs)
        scope = open_scope(args, kwargs)
        if scope is None:
            async for item in agen:
                yield item
            return
        items = _Items(scope, reducer)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = scope.enter()
            try:
                item = await (agen.asend(sent) if thrown is None else agen.athrow(thrown))
            except StopAsyncIteration:
                scope.leave(token)
                scope.close(outputs=items.outputs, attributes=items.attributes(False))
                return
            except BaseException as exc:
                scope.leave(token)
                scope.close(error=exc, outputs=items.outputs, attributes=items.attributes(False))
                raise
            scope.leave(token)
            items.add(item)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = scope.enter()
                try:
                    await agen.aclose()
                finally:
                    scope.leave(token)
                    scope.close(outputs=items.outputs, attributes=items.attributes(True))
                raise
            except BaseException as exc:  # noqa: BLE001 - the consumer's athrow(): forward it
                thrown = exc

    return traced


@overload
def trace(func: F) -> F: ...
@overload
def trace(
    *,
    name: str | None = None,
    span_type: SpanType | str = SpanType.UNKNOWN,
    attributes: dict[str, Any] | None = None,
    client: TracingClient | None = None,
    output_reducer: Reducer | None = None,
) -> Callable[[F], F]: ...
def trace(
    func: Any = None,
    *,
    name: str | None = None,
    span_type: SpanType | str = SpanType.UNKNOWN,
    attributes: dict[str, Any] | None = None,
    client: TracingClient | None = None,
    output_reducer: Reducer | None = None,
) -> Any:
    """Trace every call: ``@trace`` or ``@trace(name=..., span_type=..., attributes=...)``.

    The client is the default client at call time (``set_default_client``), unless one is
    pinned with ``client=``. On a generator, ``output_reducer(list_of_items)`` makes the
    span's outputs (e.g. joins streamed text chunks).
    """
    if func is None:
        return functools.partial(
            trace,
            name=name,
            span_type=span_type,
            attributes=attributes,
            client=client,
            output_reducer=output_reducer,
        )
    if isinstance(func, (classmethod, staticmethod)):
        inner = trace(  # type: ignore[call-overload,misc]
            func.__func__,
            name=name,
            span_type=span_type,
            attributes=attributes,
            client=client,
            output_reducer=output_reducer,
        )
        return type(func)(inner)
    span_name = name or getattr(func, "__qualname__", None) or repr(func)
    inputs_of = _inputs_of(func)

    def open_scope(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Scope | None:
        try:
            inputs = inputs_of(args, kwargs)
        except Exception:  # noqa: BLE001 - odd signatures must not break the call
            inputs = None
        return Scope.open(span_name, span_type, inputs, attributes, client, _WHERE)

    if inspect.isasyncgenfunction(func):
        return _wrap_async_generator(func, open_scope, output_reducer)
    if inspect.isgeneratorfunction(func):
        return _wrap_generator(func, open_scope, output_reducer)
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, open_scope)
    return _wrap_function(func, open_scope)
