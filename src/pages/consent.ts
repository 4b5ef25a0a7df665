import { isLoopbackHostname } from '../http/loopback.ts'
import { escapeHtml, hiddenFields, renderPage } from './html.ts'

export interface ConsentView {
  /** Where the decision is posted (the authorization endpoint's path). */
  action: string
  clientName: string
  clientId: string
  redirectUri: string
  scopes: { name: string; description: string }[]
  resource: string
  username: string
  csrf: string
  /** Every authorization parameter, carried to the POST unchanged. */
  fields: Record<string, string | undefined>
}

function describeRedirect(redirectUri: string): { host: string; warning?: string } {
  const url = new URL(redirectUri)
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    if (isLoopbackHostname(url.hostname))
      return {
        host: url.host,
        warning:
          'The code will be sent to a program on this computer (localhost). Approve only if you just started this sign-in yourself.',
      }
    return { host: url.host }
  }
  return {
    host: `${url.protocol}//${url.host}`,
    warning: `The code will be sent to an app registered for ${url.protocol.slice(0, -1)}: links. Approve only if you just started this sign-in yourself.`,
  }
}

export function renderConsentPage(view: ConsentView): Response {
  const redirect = describeRedirect(view.redirectUri)
  const warning = redirect.warning ? `<p class="warning">${escapeHtml(redirect.warning)}</p>` : ''
  const scopes = view.scopes
    .map((scope) => `<li><code>${escapeHtml(scope.name)}</code>: ${escapeHtml(scope.description)}</li>`)
    .join('\n')
  return renderPage({
    status: 200,
    title: 'Authorize access',
    body: `<h1>Allow <span id="client-name">${escapeHtml(view.clientName)}</span> to access Gatehouse?</h1>
<p>Signed in as <strong>${escapeHtml(view.username)}</strong>.</p>
<p>It will be able to:</p>
<ul id="scopes">
${scopes}
</ul>
<p>on <code id="resource">${escapeHtml(view.resource)}</code>.</p>
<p>After you decide, you return to <strong id="redirect-host">${escapeHtml(redirect.host)}</strong>.</p>
${warning}
<p class="muted">Client ID: <code>${escapeHtml(view.clientId)}</code></p>
<form method="post" action="${escapeHtml(view.action)}">
${hiddenFields({ ...view.fields, csrf_token: view.csrf })}
<div class="actions">
<button class="primary" type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>`,
  })
}
