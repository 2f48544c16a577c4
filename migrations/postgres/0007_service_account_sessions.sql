-- Service-account sessions, what lets a person recognise a session, and the retention sweep.

-- A session acts as a user or as a service account (the deprecated CloudBees createSession), never
-- both: service-account sessions have no user, so that nothing written for users' sessions (ending
-- them when a password changes, listing them) can reach one by mistake.
ALTER TABLE sessions ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE sessions ADD COLUMN service_account_id uuid REFERENCES service_accounts (service_account_id);
ALTER TABLE sessions ADD CONSTRAINT sessions_one_principal
    CHECK ((user_id IS NULL) <> (service_account_id IS NULL));
CREATE INDEX sessions_service_account ON sessions (service_account_id, session_id)
    WHERE service_account_id IS NOT NULL;

-- What the client told about itself when the session was opened, so that a person can tell their
-- sessions apart ("Firefox on my laptop"). Only these: never raw headers. The service truncates
-- each to a bounded length before writing it; NULL when the client sent nothing.
ALTER TABLE sessions ADD COLUMN user_agent text;
ALTER TABLE sessions ADD COLUMN peer_address text;
ALTER TABLE sessions ADD COLUMN device_name text;

-- The retention sweep deletes sessions whose expiry or end lies further back than the retention
-- period; end_time already has its index (0003).
CREATE INDEX sessions_expire_time ON sessions (expire_time);
