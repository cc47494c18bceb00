"""Operations tools: `python -m hocvu_tools.ops` (docs/operations.md)."""
