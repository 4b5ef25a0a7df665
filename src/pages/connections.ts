import type { UpstreamServerDto } from '../upstreams/model.ts'
import { escapeHtml, hiddenFields, renderPage } from './html.ts'

/** The routes a connections page links and posts to, all under the public URL's base path. */
export interface ConnectionsUrls {
  /** `<base>/connections` */
  page: string
  /** The server's connect route; with `returnTo`, the upstream sends the browser back there. */
  connect: (serverId: string, returnTo?: string) => string
  disconnect: (serverId: string) => string
  selection: (serverId: string) => string
}

export function connectionsUrlsOf(base: string): ConnectionsUrls {
  const page = `${base}/connections`
  const id = encodeURIComponent
  return {
    page,
    connect: (serverId, returnTo) =>
      `${base}/api/v1/mcp/servers/${id(serverId)}/oauth2/connect${returnTo ? `?return_to=${id(returnTo)}` : ''}`,
    disconnect: (serverId) => `${page}/${id(serverId)}/disconnect`,
    selection: (serverId) => `${page}/${id(serverId)}/selection`,
  }
}

export interface ConnectionsView {
  username: string
  /** The servers to show: the enabled ones the user may use. */
  servers: UpstreamServerDto[]
  /** The session's CSRF token, carried by every form. */
  csrf: string
  urls: ConnectionsUrls
  /** A message above the list (a `?connect=` that could not start, say). */
  notice?: string
  status?: number
  /** Unix seconds; the page says how long a connection that cannot renew itself has left. */
  now: number
}

function describeIn(seconds: number): string {
  const units: [number, string][] = [
    [86_400, 'day'],
    [3_600, 'hour'],
    [60, 'minute'],
  ]
  for (const [size, name] of units) {
    const count = Math.floor(seconds / size)
    if (count >= 1) return `in ${count} ${name}${count === 1 ? '' : 's'}`
  }
  return 'in less than a minute'
}

/**
 * The status in words: what the user needs to know, and whether they must act. An access token's
 * expiry is no news while Gatehouse holds a refresh token and renews it on its own; without one,
 * the expiry is when the user must reconnect.
 */
function statusOf(server: UpstreamServerDto, now: number): string {
  const { status, expires_at, renews_automatically } = server.connection
  if (status === 'needs_reauth') return 'Needs reconnecting'
  if (status === 'not_connected') return 'Not connected'
  if (status === 'not_required') return 'No sign-in needed'
  if (renews_automatically) return 'Connected · renews automatically'
  if (!expires_at) return 'Connected'
  const left = Date.parse(expires_at) / 1000 - now
  const exact = `${expires_at.slice(0, 16).replace('T', ' ')} UTC`
  return `Connected · needs reconnecting <time datetime="${escapeHtml(expires_at)}" title="${escapeHtml(exact)}">${describeIn(Math.max(0, left))}</time>`
}

/** An admin-set icon only over https (the page's CSP allows no other origin); else the name's first letter. */
function iconOf(server: UpstreamServerDto): string {
  const url = URL.parse(server.icon_url)
  if (url?.protocol === 'https:')
    return `<img class="icon" src="${escapeHtml(url.href)}" alt="" width="40" height="40" loading="lazy" referrerpolicy="no-referrer">`
  const letter = [...server.display_name.trim()][0]?.toUpperCase() ?? '?'
  return `<span class="icon placeholder" aria-hidden="true">${escapeHtml(letter)}</span>`
}

function postButton(action: string, csrf: string, label: string, fields: Record<string, string> = {}): string {
  return `<form method="post" action="${escapeHtml(action)}">
${hiddenFields({ csrf_token: csrf, ...fields })}
<button type="submit">${escapeHtml(label)}</button>
</form>`
}

function connectionControls(server: UpstreamServerDto, view: ConnectionsView): string[] {
  if (server.auth_type !== 'oauth2') return []
  const { status } = server.connection
  const controls: string[] = []
  if (status === 'not_connected' || status === 'needs_reauth') {
    // Without JavaScript the link runs the whole flow in this window and comes back here; the
    // page's script opens `data-popup` (no return_to: the callback page closes itself) instead.
    const label = status === 'needs_reauth' ? 'Reconnect' : 'Connect'
    controls.push(
      `<a class="button primary connect" href="${escapeHtml(view.urls.connect(server.id, view.urls.page))}" data-popup="${escapeHtml(view.urls.connect(server.id))}">${label}</a>`,
    )
  }
  if (status === 'connected' || status === 'needs_reauth')
    controls.push(postButton(view.urls.disconnect(server.id), view.csrf, 'Disconnect'))
  return controls
}

/** The include-in-/mcp switch: a one-button form, so it works without JavaScript too. */
function selectionControl(server: UpstreamServerDto, view: ConnectionsView): string {
  if (server.availability === 'force_on') return '<span class="always muted">Always included in /mcp</span>'
  return `<form method="post" action="${escapeHtml(view.urls.selection(server.id))}">
${hiddenFields({ csrf_token: view.csrf, selected: String(!server.selected) })}
<button type="submit" class="switch" role="switch" aria-checked="${server.selected}"><span class="track" aria-hidden="true"></span>Include in /mcp</button>
</form>`
}

function serverItem(server: UpstreamServerDto, view: ConnectionsView): string {
  const description = server.description ? `\n<p class="muted">${escapeHtml(server.description)}</p>` : ''
  const controls = [...connectionControls(server, view), selectionControl(server, view)]
  return `<li class="server" id="server-${escapeHtml(server.id)}" data-slug="${escapeHtml(server.slug)}">
<div class="server-head">
${iconOf(server)}
<div class="server-text">
<h2>${escapeHtml(server.display_name)}</h2>${description}
<p class="status ${server.connection.status}">${statusOf(server, view.now)}</p>
</div>
</div>
<div class="controls">
${controls.join('\n')}
</div>
</li>`
}

/**
 * Opens Connect in a popup when the browser allows one, and reloads the list when the callback
 * page says it is done or the popup closes; a blocked popup or a modified click follows the link.
 */
function popupScript(pagePath: string): string {
  const target = JSON.stringify(pagePath).replaceAll('<', '\\u003c')
  return `
for (const link of document.querySelectorAll('a[data-popup]')) {
  link.addEventListener('click', (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    const popup = window.open(link.dataset.popup, 'gatehouse-connect', 'popup,width=520,height=720')
    if (!popup) return
    event.preventDefault()
    let done = false
    const finish = () => {
      if (done) return
      done = true
      clearInterval(timer)
      location.replace(${target})
    }
    const timer = setInterval(() => { if (popup.closed) finish() }, 500)
    window.addEventListener('message', (message) => {
      if (message.origin === location.origin && message.data === 'gatehouse:connected') finish()
    })
  })
}`
}

/** The signed-in user's MCP servers, each with its status and controls. */
export function renderConnectionsPage(view: ConnectionsView): Response {
  const notice = view.notice ? `<p class="notice" role="status">${escapeHtml(view.notice)}</p>\n` : ''
  const list =
    view.servers.length === 0
      ? '<p class="muted">No MCP servers are available to you yet. An admin of your organization can add them.</p>'
      : `<ul class="servers">\n${view.servers.map((server) => serverItem(server, view)).join('\n')}\n</ul>`
  return renderPage({
    status: view.status ?? 200,
    title: 'Connections',
    wide: true,
    httpsImages: true,
    body: `<h1>Your MCP servers</h1>
<p class="muted">Signed in as <strong>${escapeHtml(view.username)}</strong>. Connect the servers that need your sign-in; those included in /mcp show their tools to your MCP clients.</p>
${notice}${list}`,
    script: view.servers.some((server) => server.auth_type === 'oauth2') ? popupScript(view.urls.page) : undefined,
  })
}

export function renderConnectionsErrorPage(status: number, message: string, pagePath: string): Response {
  return renderPage({
    status,
    title: 'Connections',
    body: `<h1>That did not work</h1>
<p class="error" role="alert">${escapeHtml(message)}</p>
<p><a href="${escapeHtml(pagePath)}">Back to your connections</a></p>`,
  })
}
