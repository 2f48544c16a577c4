-- Customer-support and proxy login: a client tenant's switch for support access, and on each
-- impersonated session the real user's session it was opened from, which SwitchBack returns to.
-- The same columns and rules as on Postgres.

-- A client tenant may refuse customer-support logins, and proxy logins from the tenants that serve
-- it, without being taken off their served lists. On by default, as AgileApps tenants are.
ALTER TABLE tenants ADD COLUMN allow_customer_support INTEGER NOT NULL DEFAULT 1
    CHECK (allow_customer_support IN (0, 1));

-- The real user's open session a proxy or support login was made from (its bearer), kept open
-- while they impersonate; NULL when the login carried none, or once the retention sweep has
-- deleted it.
ALTER TABLE sessions ADD COLUMN original_session_id BLOB REFERENCES sessions (session_id) ON DELETE SET NULL;

-- Ending a user's sessions (disabling them, a password reset) also ends the sessions in which they
-- impersonate someone else, found through this index.
CREATE INDEX sessions_impersonator ON sessions (impersonator_user_id, session_id)
    WHERE impersonator_user_id IS NOT NULL;
