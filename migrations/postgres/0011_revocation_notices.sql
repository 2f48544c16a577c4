-- Every change that ends a session, or changes a user or tenant a cached validation describes,
-- tells every instance at once: NOTIFY on the channel identityd_revocations. A notification is
-- delivered when its transaction commits (never if it rolls back), so an instance that receives it
-- can forget its cached answers and any later read sees the change. The payloads:
--   s:<session id>   this session ended
--   *                a user or tenant changed: forget every cached validation
-- Each payload is far below NOTIFY's 8000-byte limit. Ending many sessions in one statement sends
-- one notification per session; identical payloads in a transaction are sent once.
--
-- Triggers rather than statements in the store, so that no way of writing these tables can forget
-- to tell. Only the end of a session fires one: the frequent last-use updates do not.

CREATE FUNCTION identityd_notify_session_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('identityd_revocations', 's:' || NEW.session_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_ended
    AFTER UPDATE OF end_time ON sessions
    FOR EACH ROW WHEN (OLD.end_time IS NULL AND NEW.end_time IS NOT NULL)
    EXECUTE FUNCTION identityd_notify_session_ended();

CREATE FUNCTION identityd_notify_validations_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('identityd_revocations', '*');
    RETURN NULL;
END
$$;

-- What a validation reads of a user. Failed-login counts, locks and rehashed passwords change on
-- logins and do not change what a validation answers, so they send nothing.
CREATE TRIGGER users_notify_changed
    AFTER UPDATE ON users
    FOR EACH ROW WHEN (
        (OLD.tenant_id, OLD.user_name, OLD.email, OLD.first_name, OLD.last_name, OLD.time_zone, OLD.locale,
         OLD.date_format, OLD.employee_number, OLD.roles, OLD.disabled, OLD.password_change_time,
         OLD.force_change_password)
        IS DISTINCT FROM
        (NEW.tenant_id, NEW.user_name, NEW.email, NEW.first_name, NEW.last_name, NEW.time_zone, NEW.locale,
         NEW.date_format, NEW.employee_number, NEW.roles, NEW.disabled, NEW.password_change_time,
         NEW.force_change_password))
    EXECUTE FUNCTION identityd_notify_validations_changed();

CREATE TRIGGER tenants_notify_changed
    AFTER UPDATE ON tenants
    FOR EACH STATEMENT
    EXECUTE FUNCTION identityd_notify_validations_changed();
