import { escapeHtml, hiddenFields, renderPage } from './html.ts'

export function renderLoginPage(input: {
  action: string
  next: string
  csrf: string
  /** Identity providers to offer, with their start URLs (already carrying `return_to`). */
  providers?: { name: string; url: string }[]
  /** false hides the password form (GATEHOUSE_PASSWORD_LOGIN=false). */
  passwordLogin?: boolean
  error?: string
  login?: string
  status?: number
}): Response {
  const error = input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''
  const providers = (input.providers ?? [])
    .map(
      (provider) =>
        `<a class="button primary provider" href="${escapeHtml(provider.url)}">Sign in with ${escapeHtml(provider.name)}</a>`,
    )
    .join('\n')
  const password =
    input.passwordLogin === false
      ? ''
      : `<form method="post" action="${escapeHtml(input.action)}">
${hiddenFields({ next: input.next, csrf_token: input.csrf })}
<label for="login">Email or username</label>
<input type="text" id="login" name="login" autocomplete="username" required${providers ? '' : ' autofocus'} value="${escapeHtml(input.login ?? '')}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<div class="actions"><button class="${providers ? '' : 'primary'}" type="submit">Sign in</button></div>
</form>`
  const separator = providers && password ? '\n<p class="muted or">or with your Gatehouse password</p>' : ''
  return renderPage({
    status: input.status ?? 200,
    title: 'Sign in',
    body: `<h1>Sign in to Gatehouse</h1>
${error}
${providers ? `<div class="providers">${providers}</div>` : ''}${separator}
${password || (providers ? '' : '<p class="error">No sign-in method is configured. Ask your Gatehouse admin.</p>')}`,
  })
}

export function renderSignedInPage(username: string): Response {
  return renderPage({
    status: 200,
    title: 'Signed in',
    body: `<h1>Signed in</h1>\n<p>You are signed in as <strong>${escapeHtml(username)}</strong>. You can close this page.</p>`,
  })
}
