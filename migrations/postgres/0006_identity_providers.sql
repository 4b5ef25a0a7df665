-- Sign-in through identity providers: each user's link to a provider (subject, tokens sealed,
-- ID-token claims), and the provider a user last signed in with.

ALTER TABLE users ADD COLUMN identity_provider TEXT CHECK (identity_provider IN ('oidc', 'github'));

CREATE TABLE user_links (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  provider TEXT NOT NULL CHECK (provider IN ('oidc', 'github')),
  subject TEXT NOT NULL,
  email TEXT NOT NULL DEFAULT '',
  access_token TEXT,
  refresh_token TEXT,
  expires_at BIGINT,
  issued_at BIGINT NOT NULL,
  claims TEXT NOT NULL DEFAULT '{}',
  refresh_lease_id TEXT,
  refresh_lease_until BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, provider),
  UNIQUE (provider, subject)
);
