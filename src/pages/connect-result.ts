import { escapeHtml, renderPage } from './html.ts'

/**
 * What the browser shows when an upstream sends the user back: in a popup it closes itself
 * (the opener's page refreshes its list); in a full-page flow it links back to the connections.
 */
export function renderConnectedPage(serverName: string, connectionsUrl: string): Response {
  return renderPage({
    status: 200,
    title: `${serverName} connected`,
    body: `<h1>${escapeHtml(serverName)} is connected</h1>
<p>You can close this window and return to your MCP client.</p>
<p><a href="${escapeHtml(connectionsUrl)}">Back to your connections</a></p>`,
    script: `if (window.opener) { try { window.opener.postMessage('gatehouse:connected', location.origin) } catch {} window.close() }`,
  })
}

export interface ConnectFailedView {
  status: number
  /** What happened, in plain words. */
  message: string
  /** What to do, or what the upstream said, when it helps. */
  detail?: string
  /** `/connections?connect=<id>`, which signs the user in if needed and starts again. */
  retryUrl?: string
  connectionsUrl: string
}

/**
 * A connect that did not work, said in words with a way back, as a page like every other one:
 * everything escaped, no framing, never cached. API clients get the same words as JSON.
 */
export function renderConnectFailedPage(view: ConnectFailedView): Response {
  const detail = view.detail ? `\n<p>${escapeHtml(view.detail)}</p>` : ''
  const retry = view.retryUrl ? `<a class="button primary" href="${escapeHtml(view.retryUrl)}">Connect again</a>\n` : ''
  return renderPage({
    status: view.status,
    title: 'Connecting failed',
    body: `<h1>Connecting failed</h1>
<p class="error" role="alert">${escapeHtml(view.message)}</p>${detail}
<div class="actions">
${retry}<a class="button" href="${escapeHtml(view.connectionsUrl)}">Back to your connections</a>
</div>`,
  })
}
