"""The trace search language: parsing, evaluation in memory, compilation to SQL."""
