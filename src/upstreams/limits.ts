/**
 * The size limits of an MCP server's fields, each defined once: the request schemas (and so the
 * OpenAPI document) and the checks made after trimming both read them, so what the documentation
 * promises is what the server enforces.
 */

/** Organization and server IDs. */
export const ID_MAX_LENGTH = 64

export const DISPLAY_NAME_MAX_LENGTH = 128

/** DESIGN.md: the slug names the server in tool names (`<slug>__<tool>`) and URLs. */
export const SLUG_MAX_LENGTH = 32

export const DESCRIPTION_MAX_LENGTH = 2000

/** `url`, `icon_url`, `oauth2_auth_url` and `oauth2_token_url`. */
export const URL_MAX_LENGTH = 2048

export const OAUTH2_CLIENT_ID_MAX_LENGTH = 512

export const OAUTH2_CLIENT_SECRET_MAX_LENGTH = 4096

/** `oauth2_scopes`, the whole space-separated list. */
export const OAUTH2_SCOPES_MAX_LENGTH = 2048

/** `api_key_header` and each name in `custom_headers`. */
export const HEADER_NAME_MAX_LENGTH = 256

/** `api_key_value` and each value in `custom_headers`. */
export const HEADER_VALUE_MAX_LENGTH = 8192

export const CUSTOM_HEADERS_MAX_COUNT = 50

/** Entries of `tool_allow_list` and of `tool_deny_list`. */
export const TOOL_LIST_MAX_ITEMS = 500

/** Each entry of a tool list: a tool name or a `*` glob. */
export const TOOL_NAME_MAX_LENGTH = 128
