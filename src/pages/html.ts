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
  main { box-sizing: border-box; width: min(26rem, calc(100vw - 1rem)); padding: clamp(1rem, 5vw, 2rem); border: 1px solid #8884; border-radius: 12px; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  p, li { line-height: 1.45; }
  label { display: block; margin: .8rem 0 .3rem; font-weight: 600; }
  input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .55rem; font: inherit; border: 1px solid #8888; border-radius: 6px; }
  button { font: inherit; padding: .55rem 1.1rem; border-radius: 6px; border: 1px solid #8888; cursor: pointer; }
  button.primary, a.button.primary { background: #2457d6; color: white; border-color: #2457d6; }
  a.button { display: inline-block; font: inherit; padding: .55rem 1.1rem; border-radius: 6px; border: 1px solid #8888; text-decoration: none; color: inherit; }
  .providers { display: grid; gap: .6rem; margin: 1rem 0; }
  .providers a.button { text-align: center; }
  .actions { display: flex; gap: .6rem; margin-top: 1.4rem; }
  .error { color: #c22; font-weight: 600; }
  .warning { background: #fd03; border: 1px solid #c908; padding: .6rem; border-radius: 6px; }
  .muted { opacity: .75; font-size: .9rem; }
  code { overflow-wrap: anywhere; }
  main.wide { box-sizing: border-box; width: min(44rem, calc(100% - 1rem)); margin: .5rem 0; padding: clamp(1rem, 4vw, 2rem); }
  .notice { border: 1px solid #8886; padding: .6rem; border-radius: 6px; overflow-wrap: anywhere; }
  .servers { list-style: none; margin: 1.2rem 0 0; padding: 0; display: flex; flex-direction: column; gap: .8rem; }
  .server { display: flex; flex-wrap: wrap; align-items: center; gap: .8rem 1rem; padding: .9rem; border: 1px solid #8884; border-radius: 10px; }
  .server-head { display: flex; gap: .8rem; align-items: flex-start; flex: 1 1 15rem; min-width: 0; }
  .server-text { min-width: 0; }
  .server h2 { font-size: 1.05rem; margin: 0; overflow-wrap: anywhere; }
  .server p { margin: .2rem 0 0; overflow-wrap: anywhere; }
  .icon { flex: none; width: 2.5rem; height: 2.5rem; border-radius: 8px; object-fit: cover; }
  .icon.placeholder { display: grid; place-items: center; background: #2457d626; color: #2457d6; font-weight: 700; font-size: 1.15rem; }
  .status { font-weight: 600; }
  .status.connected { color: #1a7f37; }
  .status.needs_reauth { color: #b35900; }
  .controls { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; }
  .controls form { margin: 0; }
  button.switch { display: inline-flex; align-items: center; gap: .5rem; padding-inline: .3rem; background: none; border-color: transparent; color: inherit; }
  .switch .track { flex: none; position: relative; width: 2.2rem; height: 1.25rem; border-radius: 1rem; background: #8887; }
  .switch .track::after { content: ''; position: absolute; top: .15rem; left: .15rem; width: .95rem; height: .95rem; border-radius: 50%; background: white; }
  .switch[aria-checked=true] .track { background: #2457d6; }
  .switch[aria-checked=true] .track::after { left: 1.1rem; }
  .always { padding: .55rem 0; }
`

export interface Page {
  status: number
  title: string
  body: string
  /** An inline script, allowed by this response's nonce alone. */
  script?: string
  /** A wider main column, for lists (the sign-in and consent pages keep the narrow one). */
  wide?: boolean
  /** Also allow images from any https origin (icons an admin configured); otherwise only our own. */
  httpsImages?: boolean
  /** More CSS for this page, in the same nonce'd style element. */
  style?: string
  /** A class of its own for the main column (a layout the shared styles lack). */
  mainClass?: string
}

/**
 * A complete page: no external assets, a CSP that allows only this response's inline style, no
 * framing (clickjacking on consent), no referrer (authorize URLs carry state), never cached.
 */
export function renderPage({ status, title, body, script, wide, httpsImages, style, mainClass }: Page): Response {
  const nonce = crypto.randomUUID().replaceAll('-', '')
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Gatehouse</title>
<style nonce="${nonce}">${STYLE}${style ?? ''}</style>
</head>
<body>
<main${mainClass ? ` class="${escapeHtml(mainClass)}"` : wide ? ' class="wide"' : ''}>
${body}
</main>${script ? `\n<script nonce="${nonce}">${script}</script>` : ''}
</body>
</html>
`
  return new Response(html, {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}';${script ? ` script-src 'nonce-${nonce}';` : ''} img-src 'self' data:${httpsImages ? ' https:' : ''}; frame-ancestors 'none'; base-uri 'none'`,
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
