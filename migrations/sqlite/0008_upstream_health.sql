-- Why an upstream last failed to answer (a list over its size or count cap, an error), shown to
-- its admins; cleared by the next answer that succeeds.

ALTER TABLE mcp_servers ADD COLUMN last_error TEXT;
ALTER TABLE mcp_servers ADD COLUMN last_error_at INTEGER;
