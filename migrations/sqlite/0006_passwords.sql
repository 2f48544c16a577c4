-- The password life cycle: each tenant's password rules and brute-force lockout settings, and on
-- each user the state a password change, an administrator's reset and failed logins leave behind.
-- The same columns and rules as on Postgres.

-- Shortest password a tenant's users may set, in characters after NFKC normalisation. NIST SP
-- 800-63B's floor is 8; at most 64, since every password of 64 characters must be accepted.
ALTER TABLE tenants ADD COLUMN min_password_length INTEGER NOT NULL DEFAULT 8
    CHECK (min_password_length BETWEEN 8 AND 64);
-- Consecutive failed logins after which an account is locked for lockout_seconds; every further
-- failure after a lock doubles it, up to max_lockout_seconds.
ALTER TABLE tenants ADD COLUMN lockout_failures INTEGER NOT NULL DEFAULT 5
    CHECK (lockout_failures BETWEEN 1 AND 100);
ALTER TABLE tenants ADD COLUMN lockout_seconds INTEGER NOT NULL DEFAULT 60
    CHECK (lockout_seconds BETWEEN 1 AND 86400);
ALTER TABLE tenants ADD COLUMN max_lockout_seconds INTEGER NOT NULL DEFAULT 900
    CHECK (max_lockout_seconds BETWEEN 1 AND 86400 AND max_lockout_seconds >= lockout_seconds);

-- Set by an administrator's reset: the user must choose a new password at their next login.
ALTER TABLE users ADD COLUMN force_change_password INTEGER NOT NULL DEFAULT 0;
-- Consecutive failed password logins since the last successful one. Incremented in SQL, so that
-- failures on every instance count; at 100 (NIST SP 800-63B's most) the account stays locked until
-- an administrator unlocks it.
ALTER TABLE users ADD COLUMN failed_login_count INTEGER NOT NULL DEFAULT 0
    CHECK (failed_login_count BETWEEN 0 AND 100);
-- The end of the latest temporary lock (microseconds since the epoch); password logins are refused
-- while it is in the future.
ALTER TABLE users ADD COLUMN locked_until INTEGER;
