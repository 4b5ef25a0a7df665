/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;')
}

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: Canvas; color: CanvasText; }
  main { width: min(26rem, calc(100vw - 2rem)); padding: 2rem; border: 1px solid #8884; border-radius: 12px; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  p, li { line-height: 1.45; }
  label { display: block; margin: .8rem 0 .3rem; font-weight: 600; }
  input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .55rem; font: inherit; border: 1px solid #8888; border-radius: 6px; }
  button { font: inherit; padding: .55rem 1.1rem; border-radius: 6px; border: 1px solid #8888; cursor: pointer; }
  button.primary { background: #2457d6; color: white; border-color: #2457d6; }
  .actions { display: flex; gap: .6rem; margin-top: 1.4rem; }
  .error { color: #c22; font-weight: 600; }
  .warning { background: #fd03; border: 1px solid #c908; padding: .6rem; border-radius: 6px; }
  .muted { opacity: .75; font-size: .9rem; }
  code { overflow-wrap: anywhere; }
`

export interface Page {
  status: number
  title: string
  body: string
  /** An inline script, allowed by this response's nonce alone. */
  script?: string
}

/**
 * A complete page: no external assets, a CSP that allows only this response's inline style, no
 * framing (clickjacking on consent), no referrer (authorize URLs carry state), never cached.
 */
export function renderPage({ status, title, body, script }: Page): Response {
  const nonce = crypto.randomUUID().replaceAll('-', '')
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Gatehouse</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main>
${body}
</main>${script ? `\n<script nonce="${nonce}">${script}</script>` : ''}
</body>
</html>
`
  return new Response(html, {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}';${script ? ` script-src 'nonce-${nonce}';` : ''} img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'`,
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    },
  })
}

export function hiddenFields(fields: Record<string, string | undefined>): string {
  return Object.entries(fields)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('\n')
}

export function renderErrorPage(status: number, title: string, message: string): Response {
  return renderPage({
    status,
    title,
    body: `<h1>${escapeHtml(title)}</h1>\n<p class="error">${escapeHtml(message)}</p>\n<p class="muted">Return to the application and try again. If this keeps happening, tell its developer or your Gatehouse admin.</p>`,
  })
}
