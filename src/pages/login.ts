import { escapeHtml, hiddenFields, renderPage } from './html.ts'

export function renderLoginPage(input: {
  action: string
  next: string
  csrf: string
  error?: string
  login?: string
  status?: number
}): Response {
  const error = input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''
  return renderPage({
    status: input.status ?? 200,
    title: 'Sign in',
    body: `<h1>Sign in to Gatehouse</h1>
${error}
<form method="post" action="${escapeHtml(input.action)}">
${hiddenFields({ next: input.next, csrf_token: input.csrf })}
<label for="login">Email or username</label>
<input type="text" id="login" name="login" autocomplete="username" required autofocus value="${escapeHtml(input.login ?? '')}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<div class="actions"><button class="primary" type="submit">Sign in</button></div>
</form>`,
  })
}

export function renderSignedInPage(username: string): Response {
  return renderPage({
    status: 200,
    title: 'Signed in',
    body: `<h1>Signed in</h1>\n<p>You are signed in as <strong>${escapeHtml(username)}</strong>. You can close this page.</p>`,
  })
}
