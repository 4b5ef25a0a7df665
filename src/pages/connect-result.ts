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

export function renderConnectFailedPage(status: number, message: string, connectionsUrl: string): Response {
  return renderPage({
    status,
    title: 'Connecting failed',
    body: `<h1>Connecting failed</h1>
<p class="error">${escapeHtml(message)}</p>
<p><a href="${escapeHtml(connectionsUrl)}">Back to your connections</a></p>`,
  })
}
