"""The local web UI behind ``lowtrace ui`` (extra ``ui``): Starlette pages over a store."""
