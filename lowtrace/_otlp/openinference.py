"""The structured OpenInference attributes Phoenix (and Arize) read from model and retriever
spans: documents, chat messages and invocation parameters.

They are derived from what lowtrace recorded, in the shapes the integrations and users
record them: a retriever's outputs as a list of documents (``{"page_content"|"content"|
"text", "id", "score", "metadata"}`` dicts or plain strings, or ``{"documents": [...]}``),
a chat model's inputs as ``{"messages": [...]}`` or a list of messages (OpenAI or Anthropic
content parts), its outputs as a message, an OpenAI completion (``choices``) or a string,
and model parameters as attributes (``temperature``, ``max_tokens``... or an
``invocation_params`` dict, as the LangChain handler records them).
Anything in another shape is left to ``input.value`` / ``output.value``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = ["document_attributes", "invocation_parameters", "message_attributes"]

_CONTENT_KEYS: Final = ("page_content", "content", "text")
_ID_KEYS: Final = ("id", "doc_id", "document_id")
_SCORE_KEYS: Final = ("score", "relevance_score")
_PARAMS: Final = (
    "model",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
    "dimensions",
)
_MAX_ITEMS: Final = 1_000  # documents or messages flattened per span at most


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an int past 64 bits, a key orjson cannot write: never fail the batch
        return json.dumps(value, default=repr, skipkeys=True)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _dumps(value)


def _documents(outputs: Any) -> list[Any] | None:
    if isinstance(outputs, Mapping) and isinstance(outputs.get("documents"), list):
        outputs = outputs["documents"]
    return outputs if isinstance(outputs, list) else None


def document_attributes(outputs: Any, prefix: str = "retrieval.documents") -> dict[str, Any]:
    """``retrieval.documents.N.document.{id,content,score,metadata}`` from a retriever's outputs."""
    documents = _documents(outputs)
    out: dict[str, Any] = {}
    if not documents:
        return out
    for index, doc in enumerate(documents[:_MAX_ITEMS]):
        key = f"{prefix}.{index}.document"
        if isinstance(doc, str):
            out[f"{key}.content"] = doc
            continue
        if not isinstance(doc, Mapping):
            out[f"{key}.content"] = _text(doc)
            continue
        rest = dict(doc)
        content = next((rest.pop(k) for k in _CONTENT_KEYS if k in rest), None)
        doc_id = next((rest.pop(k) for k in _ID_KEYS if k in rest), None)
        score = next((rest.pop(k) for k in _SCORE_KEYS if k in rest), None)
        metadata = rest.pop("metadata", None)
        if content is None and rest:
            content, rest = rest, {}  # a bare record: the record is the content
        if content is not None:
            out[f"{key}.content"] = _text(content)
        if doc_id is not None:
            out[f"{key}.id"] = str(doc_id)
        if isinstance(score, int | float) and not isinstance(score, bool):
            out[f"{key}.score"] = float(score)
        if isinstance(metadata, Mapping):
            metadata = {**metadata, **rest}
        elif rest:
            metadata = rest
        if metadata:
            out[f"{key}.metadata"] = _text(metadata)
    return out


def _message(out: dict[str, Any], key: str, message: Mapping[str, Any], role: str) -> None:
    out[f"{key}.role"] = str(message.get("role") or role)
    content = message.get("content")
    if isinstance(content, str):
        out[f"{key}.content"] = content
    elif isinstance(content, list):
        for index, part in enumerate(content[:_MAX_ITEMS]):
            part_key = f"{key}.contents.{index}.message_content"
            if isinstance(part, str):
                out[f"{part_key}.type"] = "text"
                out[f"{part_key}.text"] = part
            elif isinstance(part, Mapping):
                kind = str(part.get("type") or "text")
                out[f"{part_key}.type"] = kind
                text = part.get("text")
                if isinstance(text, str):
                    out[f"{part_key}.text"] = text
                elif kind != "text":
                    out[f"{part_key}.text"] = _dumps(part)
    elif content is not None:
        out[f"{key}.content"] = _text(content)
    if isinstance(message.get("name"), str):
        out[f"{key}.name"] = message["name"]
    if isinstance(message.get("tool_call_id"), str):
        out[f"{key}.tool_call_id"] = message["tool_call_id"]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for index, call in enumerate(calls[:_MAX_ITEMS]):
            if not isinstance(call, Mapping):
                continue
            call_key = f"{key}.tool_calls.{index}.tool_call"
            nested = call.get("function")
            function: Mapping[str, Any] = nested if isinstance(nested, Mapping) else call
            if call.get("id") is not None:
                out[f"{call_key}.id"] = str(call["id"])
            if function.get("name") is not None:
                out[f"{call_key}.function.name"] = str(function["name"])
            arguments = function.get("arguments", function.get("input"))
            if arguments is not None:
                out[f"{call_key}.function.arguments"] = _text(arguments)


def _input_messages(inputs: Any) -> list[Any] | None:
    if isinstance(inputs, Mapping):
        inputs = inputs.get("messages")
    if isinstance(inputs, list) and inputs and all(isinstance(m, Mapping) for m in inputs):
        return inputs
    return None


def _output_messages(outputs: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(outputs, str):
        return [{"role": "assistant", "content": outputs}]
    if not isinstance(outputs, Mapping):
        return None
    choices = outputs.get("choices")
    if isinstance(choices, list):
        found = [c["message"] for c in choices if isinstance(c, Mapping) and "message" in c]
        return [m for m in found if isinstance(m, Mapping)] or None
    if isinstance(outputs.get("messages"), list):
        return _input_messages(outputs)
    if "content" in outputs or "tool_calls" in outputs:
        return [outputs]
    return None


def message_attributes(inputs: Any, outputs: Any) -> dict[str, Any]:
    """``llm.input_messages.N.message.*`` / ``llm.output_messages.N.message.*`` of a model call."""
    out: dict[str, Any] = {}
    for index, message in enumerate((_input_messages(inputs) or [])[:_MAX_ITEMS]):
        _message(out, f"llm.input_messages.{index}.message", message, "user")
    for index, message in enumerate((_output_messages(outputs) or [])[:_MAX_ITEMS]):
        _message(out, f"llm.output_messages.{index}.message", message, "assistant")
    return out


def invocation_parameters(attributes: Mapping[str, Any]) -> str | None:
    """``llm.invocation_parameters``: the model parameters recorded on a span, as JSON."""
    given = attributes.get("invocation_params")
    params: dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
    for key in _PARAMS:
        if key in attributes and attributes[key] is not None:
            params.setdefault(key, attributes[key])
    return _dumps(params) if params else None
