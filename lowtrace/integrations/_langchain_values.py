"""LangChain values as plain data: messages, documents, token usage, a run's name.

The callback handler records these as span inputs and outputs; nothing here imports LangChain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["document", "generations", "message", "run_name", "usage"]

# LangChain message types as the chat roles every model API (and our viewer) uses.
_ROLES = {
    "human": "user",
    "ai": "assistant",
    "AIMessage": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
    "HumanMessage": "user",
}


def run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    """The run's own name, else its serialized name or class, else ``default``."""
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        if isinstance(serialized.get("name"), str) and serialized["name"]:
            return str(serialized["name"])
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return default


def message(msg: Any) -> dict[str, Any]:
    """A LangChain message as a plain dict: role, content, and tool calls when present."""
    kind = str(getattr(msg, "type", type(msg).__name__)).removesuffix("Chunk")
    out: dict[str, Any] = {
        "role": _ROLES.get(kind, kind),
        "content": getattr(msg, "content", str(msg)),
    }
    tool_calls = getattr(msg, "tool_calls", None)
    if tool_calls:
        out["tool_calls"] = list(tool_calls)
    name = getattr(msg, "name", None)
    if name:
        out["name"] = name
    return out


def document(doc: Any) -> dict[str, Any]:
    """A retrieved document: its text and metadata."""
    return {
        "page_content": getattr(doc, "page_content", str(doc)),
        "metadata": dict(getattr(doc, "metadata", None) or {}),
    }


def usage(response: Any) -> tuple[int | None, int | None, int | None] | None:
    """Token usage of an LLMResult: message usage_metadata, else the provider's llm_output."""
    inp = out = total = 0
    found = False
    for batch in getattr(response, "generations", None) or []:
        for gen in batch:
            meta = getattr(getattr(gen, "message", None), "usage_metadata", None)
            if meta:
                found = True
                inp += int(meta.get("input_tokens") or 0)
                out += int(meta.get("output_tokens") or 0)
                total += int(meta.get("total_tokens") or 0)
    if found:
        return inp, out, total or inp + out
    llm_output = getattr(response, "llm_output", None) or {}
    reported = llm_output.get("token_usage") or llm_output.get("usage")
    if isinstance(reported, Mapping):
        inp = reported.get("prompt_tokens", reported.get("input_tokens"))
        out = reported.get("completion_tokens", reported.get("output_tokens"))
        tot = reported.get("total_tokens")
        if inp is not None or out is not None or tot is not None:
            return inp, out, tot
    return None


def generations(response: Any) -> Any:
    """The model's reply: one message dict (or text), or a list when there are several."""
    outs: list[Any] = []
    for batch in getattr(response, "generations", None) or []:
        for gen in batch:
            msg = getattr(gen, "message", None)
            outs.append(message(msg) if msg is not None else getattr(gen, "text", gen))
    return outs[0] if len(outs) == 1 else outs
