"""Operations over a whole prefix that the CLI calls: `archive` (export/import) and `stats`.

Built on `streams/` (StreamState's replay and locks) and `history/`; nothing below imports this folder.
"""
