"""Operations tools: `python -m hocvu.ops` (docs/operations.md)."""
