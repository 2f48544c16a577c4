//! The password life cycle: changing one's password, an administrator's reset, the forced change
//! that follows it or an expired password, the password rules, brute-force lockout, the limit on
//! failed logins per address, and rehashing when the cost changes.

use chrono::Duration;
use identityd::core::BootstrapRequest;
use identityd::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, assert_error, bearer, violated_fields};
use crate::support::calls::cheap_hashing;
use crate::support::traced_server::TracedServer;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_password_change_ends_other_sessions_but_not_the_current_one,
        a_password_change_proves_the_current_password_as_login_does,
        an_administrator_reset_forces_a_change_at_the_next_login,
        a_forced_change_restricts_password_sessions_only,
        expiry_policies_force_a_change_from_their_last_day,
        an_expired_password_is_changed_through_its_own_session,
        the_lockout_grows_with_failures_and_success_resets_it,
        a_locked_account_answers_exactly_as_a_wrong_password,
        a_hundred_failures_lock_until_an_administrator_unlocks,
        one_address_with_too_many_failures_is_refused_for_a_while,
        weak_passwords_are_refused_wherever_a_password_is_set,
        passwords_match_in_their_nfkc_form,
        a_raised_cost_rehashes_passwords_at_login,
        tenants_set_their_password_rules_and_lockout,
        no_password_reaches_a_table_or_a_log_line,
    ]
}

const PASSWORD: &str = "a tidy quiet meadow";
const NEW_PASSWORD: &str = "seven brisk otters swim";

/// A fresh user of the administrator's tenant; returns the user.
async fn user(app: &TestApp, name: &str) -> pb::User {
    app.create_user(&app.admin_tenant_id, name, PASSWORD, &[]).await
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

async fn a_password_change_ends_other_sessions_but_not_the_current_one(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let name = "ann@example.com";
    user(&app, name).await;
    let current = app.login_ok(name, PASSWORD).await.session_token;
    let other = app.login_ok(name, PASSWORD).await.session_token;
    let token = app.create_token(&current, "ci").await.unwrap();
    let token_session = app.token_login(&token).await.unwrap().session_token;

    app.change_password(Some(&current), name, PASSWORD, NEW_PASSWORD)
        .await
        .expect("change the password");
    assert!(
        app.validate(&current).await.valid,
        "the session the change came through stays"
    );
    assert!(!app.validate(&other).await.valid, "another session ends");
    assert!(
        !app.validate(&token_session).await.valid,
        "a session opened with a token ends"
    );
    assert!(
        app.token_login(&token).await.is_ok(),
        "the access token itself stays valid"
    );
    assert_error(
        &app.login(name, PASSWORD).await.unwrap_err(),
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    let again = app.login_ok(name, NEW_PASSWORD).await.session_token;

    // Without metadata, every session ends.
    app.change_password(None, name, NEW_PASSWORD, PASSWORD).await.unwrap();
    assert!(!app.validate(&current).await.valid);
    assert!(!app.validate(&again).await.valid);
    app.finish().await;
}

async fn a_password_change_proves_the_current_password_as_login_does(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let name = "ben@example.com";
    user(&app, name).await;
    let wrong_login = app.login(name, "not the password").await.unwrap_err();
    let wrong_change = app
        .change_password(None, name, "not the password", NEW_PASSWORD)
        .await
        .unwrap_err();
    let unknown = app
        .change_password(None, "nobody@example.com", "not the password", NEW_PASSWORD)
        .await
        .unwrap_err();
    for status in [&wrong_change, &unknown] {
        assert_error(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
        assert_eq!(status.message(), wrong_login.message());
    }
    let same = app.change_password(None, name, PASSWORD, PASSWORD).await.unwrap_err();
    assert_error(&same, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&same), ["new_password"]);
    assert!(same.message().contains("differ from the current"), "{}", same.message());

    // A user access token, or a session opened with one, proves nothing about the password.
    let session = app.login_ok(name, PASSWORD).await.session_token;
    let token = app.create_token(&session, "ci").await.unwrap();
    let with_token = app
        .change_password(Some(&token), name, PASSWORD, NEW_PASSWORD)
        .await
        .unwrap_err();
    assert_error(&with_token, Code::PermissionDenied, "ACCESS_TOKEN_NOT_ALLOWED");
    // Another user's session is not theirs to keep.
    let others = app
        .change_password(Some(&app.admin_token), name, PASSWORD, NEW_PASSWORD)
        .await
        .unwrap_err();
    assert_error(&others, Code::FailedPrecondition, "FAILED_PRECONDITION");
    assert!(app.login(name, PASSWORD).await.is_ok(), "neither changed anything");
    // The failed proofs counted as failed logins.
    let failures = app
        .get_user(
            &app.admin_token,
            &app.login_ok(name, PASSWORD).await.user.unwrap().user_id,
        )
        .await
        .unwrap();
    assert_eq!(failures.failed_login_count, 0, "the successful login reset the count");
    app.finish().await;
}

async fn an_administrator_reset_forces_a_change_at_the_next_login(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = pb::Tenant {
        tenant_id: app.admin_tenant_id.clone(),
        password_expiry: pb::PasswordExpiry::Never as i32,
        ..Default::default()
    };
    app.update_tenant(&app.admin_token, tenant, &["password_expiry"])
        .await
        .unwrap();
    let name = "cat@example.com";
    let cat = user(&app, name).await;
    let before = app.login_ok(name, PASSWORD).await.session_token;
    let token = app.create_token(&before, "ci").await.unwrap();

    let reset = app
        .set_password(&app.admin_token, &cat.user_id, "a temporary pass phrase", true)
        .await
        .unwrap();
    assert!(reset.force_change_password, "the administrator sees the mark");
    assert!(!app.validate(&before).await.valid, "the reset ends the user's sessions");
    assert!(app.token_login(&token).await.is_ok(), "and keeps their access tokens");
    assert_error(
        &app.login(name, PASSWORD).await.unwrap_err(),
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );

    let login = app.login_ok(name, "a temporary pass phrase").await;
    assert!(
        login.is_force_change_password,
        "forced although passwords never expire in this tenant"
    );
    let forced = login.session_token;
    assert!(app.validate(&forced).await.is_force_change_password);
    let whoami = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &forced))
        .await
        .expect("who am I is allowed")
        .into_inner();
    assert!(whoami.is_force_change_password);
    let refused = app.my_sessions(&forced).await.unwrap_err();
    assert_error(&refused, Code::FailedPrecondition, "PASSWORD_CHANGE_REQUIRED");

    app.change_password(Some(&forced), name, "a temporary pass phrase", NEW_PASSWORD)
        .await
        .expect("the one call that matters");
    assert!(
        app.my_sessions(&forced).await.is_ok(),
        "the same session is free once it is changed"
    );
    assert!(!app.validate(&forced).await.is_force_change_password);
    assert!(!app.login_ok(name, NEW_PASSWORD).await.is_force_change_password);
    let cat = app.get_user(&app.admin_token, &cat.user_id).await.unwrap();
    assert!(!cat.force_change_password);

    // Told otherwise, the administrator's password need not be changed.
    app.set_password(&app.admin_token, &cat.user_id, "a kept pass phrase", false)
        .await
        .unwrap();
    assert!(!app.login_ok(name, "a kept pass phrase").await.is_force_change_password);
    app.finish().await;
}

async fn a_forced_change_restricts_password_sessions_only(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let name = "dan@example.com";
    let dan = user(&app, name).await;
    let session = app.login_ok(name, PASSWORD).await.session_token;
    let token = app.create_token(&session, "ci").await.unwrap();
    app.set_password(&app.admin_token, &dan.user_id, "a temporary pass phrase", true)
        .await
        .unwrap();

    // Automation with the token keeps working: the password is not its credential.
    assert!(app.my_sessions(&token).await.is_ok(), "a token as the bearer");
    let token_login = app.token_login(&token).await.unwrap();
    assert!(!token_login.is_force_change_password);
    assert!(
        app.my_sessions(&token_login.session_token).await.is_ok(),
        "a session opened with a token"
    );
    assert!(!app.validate(&token_login.session_token).await.is_force_change_password);

    // A password session may log out.
    let forced = app.login_ok(name, "a temporary pass phrase").await.session_token;
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &forced))
        .await
        .expect("logout is allowed");
    assert!(!app.validate(&forced).await.valid);
    app.finish().await;
}

async fn expiry_policies_force_a_change_from_their_last_day(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let policies = [
        (pb::PasswordExpiry::Days15, Some(15)),
        (pb::PasswordExpiry::Days30, Some(30)),
        (pb::PasswordExpiry::Days60, Some(60)),
        (pb::PasswordExpiry::Days90, Some(90)),
        (pb::PasswordExpiry::Days120, Some(120)),
        (pb::PasswordExpiry::Never, None),
    ];
    // One tenant and user per policy, all with passwords set now.
    let mut checks = Vec::new();
    for (n, (policy, days)) in policies.into_iter().enumerate() {
        let tenant = app.create_tenant(&format!("Policy {n}")).await;
        let tenant = pb::Tenant {
            password_expiry: policy as i32,
            ..tenant
        };
        app.update_tenant(&app.admin_token, tenant.clone(), &["password_expiry"])
            .await
            .unwrap();
        let name = format!("user{n}@example.com");
        app.create_user(&tenant.tenant_id, &name, PASSWORD, &[]).await;
        match days {
            Some(d) => checks.extend([
                (d - 1, name.clone(), false),
                (d, name.clone(), true),
                (d + 1, name, true),
            ]),
            None => checks.extend([(121, name.clone(), false), (3650, name, false)]),
        }
    }
    checks.sort_by_key(|(day, _, _)| *day);
    let mut today = 0;
    let mut wrong = Vec::new();
    for (day, name, forced) in checks {
        app.clock.advance(days(day - today));
        today = day;
        let login = app.login_ok(&name, PASSWORD).await;
        let valid = app.validate(&login.session_token).await;
        if login.is_force_change_password != forced || valid.is_force_change_password != forced {
            wrong.push(format!("{name} on day {day}: want forced = {forced}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
    app.finish().await;
}

/// The path the AgileApps login describes: an expired password still logs in, with
/// `is_force_change_password`, and that session may change it; the next login is free.
async fn an_expired_password_is_changed_through_its_own_session(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let name = "erin@example.com";
    user(&app, name).await; // the default policy: 90 days
    app.clock.advance(days(91));

    let expired = app.login_ok(name, PASSWORD).await;
    assert!(expired.is_force_change_password, "expired after 90 days");
    let refused = app.my_sessions(&expired.session_token).await.unwrap_err();
    assert_error(&refused, Code::FailedPrecondition, "PASSWORD_CHANGE_REQUIRED");

    app.change_password(Some(&expired.session_token), name, PASSWORD, NEW_PASSWORD)
        .await
        .expect("the expired password is changed");
    assert!(app.my_sessions(&expired.session_token).await.is_ok(), "the gate opens");
    assert!(!app.validate(&expired.session_token).await.is_force_change_password);
    assert!(!app.login_ok(name, NEW_PASSWORD).await.is_force_change_password);
    assert_eq!(
        app.login(name, PASSWORD).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    app.finish().await;
}

/// The lock on a user as the administrator sees it: failures and seconds until it ends.
async fn lock_of(app: &TestApp, user_id: &str) -> (i32, Option<i64>) {
    let user = app.get_user(&app.admin_token, user_id).await.unwrap();
    let now = app.clock_now().timestamp();
    (user.failed_login_count, user.locked_until.map(|t| t.seconds - now))
}

async fn the_lockout_grows_with_failures_and_success_resets_it(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.password_login_failures = 0).await;
    let name = "eve@example.com";
    let eve = user(&app, name).await;
    for _ in 0..4 {
        app.login(name, "a wrong guess").await.unwrap_err();
    }
    assert_eq!(
        lock_of(&app, &eve.user_id).await,
        (4, None),
        "four failures lock nothing"
    );
    app.login(name, "a wrong guess").await.unwrap_err();
    assert_eq!(
        lock_of(&app, &eve.user_id).await,
        (5, Some(60)),
        "the fifth locks for a minute"
    );
    assert!(
        app.login(name, PASSWORD).await.is_err(),
        "the right password is refused while locked"
    );
    app.login(name, "a wrong guess").await.unwrap_err();
    assert_eq!(
        lock_of(&app, &eve.user_id).await,
        (5, Some(60)),
        "a refused attempt does not count"
    );

    // Each failure after a lock doubles it, up to 15 minutes.
    let mut waits = Vec::new();
    for _ in 0..5 {
        let (_, Some(left)) = lock_of(&app, &eve.user_id).await else {
            panic!("not locked")
        };
        app.clock.advance(Duration::seconds(left));
        app.login(name, "a wrong guess").await.unwrap_err();
        waits.push(lock_of(&app, &eve.user_id).await);
    }
    assert_eq!(
        waits,
        [
            (6, Some(120)),
            (7, Some(240)),
            (8, Some(480)),
            (9, Some(900)),
            (10, Some(900))
        ]
    );
    let locked = app
        .admin
        .clone()
        .list_audit_events(bearer(
            pb::ListAuditEventsRequest {
                action: "login.locked".into(),
                ..Default::default()
            },
            &app.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    assert_eq!(locked.len(), 6, "every lock is audited");
    assert!(locked.iter().all(|e| e.subject_user_id == eve.user_id));

    // Once the lock is over, the right password logs in and the count starts again.
    app.clock.advance(Duration::seconds(900));
    app.login_ok(name, PASSWORD).await;
    assert_eq!(lock_of(&app, &eve.user_id).await, (0, None));
    app.finish().await;
}

async fn a_locked_account_answers_exactly_as_a_wrong_password(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.password_login_failures = 0).await;
    let name = "fay@example.com";
    let fay = user(&app, name).await;
    let wrong = app.login(name, "a wrong guess").await.unwrap_err();
    for _ in 0..4 {
        app.login(name, "a wrong guess").await.unwrap_err();
    }
    let locked_right = app.login(name, PASSWORD).await.unwrap_err();
    let locked_wrong = app.login(name, "a wrong guess").await.unwrap_err();
    for locked in [&locked_right, &locked_wrong] {
        assert_eq!(locked.code(), wrong.code());
        assert_eq!(locked.message(), wrong.message());
        assert_eq!(locked.details(), wrong.details(), "the same bytes of details");
    }
    let changing = app
        .change_password(None, name, PASSWORD, NEW_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!((changing.code(), changing.details()), (wrong.code(), wrong.details()));
    // The administrator sees the lock and clears it.
    let unlocked = app.unlock(&app.admin_token, &fay.user_id).await.unwrap();
    assert_eq!((unlocked.failed_login_count, unlocked.locked_until), (0, None));
    app.login_ok(name, PASSWORD).await;
    app.finish().await;
}

async fn a_hundred_failures_lock_until_an_administrator_unlocks(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| {
        cheap_hashing(c);
        c.password_login_failures = 0;
    })
    .await;
    let tenant = app.create_tenant("Patient").await;
    let patient = pb::Tenant {
        lockout_failures: 100,
        lockout_duration: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        max_lockout_duration: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        ..tenant.clone()
    };
    let paths = ["lockout_failures", "lockout_duration", "max_lockout_duration"];
    app.update_tenant(&app.admin_token, patient, &paths).await.unwrap();
    let name = "gil@example.com";
    let gil = app.create_user(&tenant.tenant_id, name, PASSWORD, &[]).await;
    for _ in 0..100 {
        app.login(name, "a wrong guess").await.unwrap_err();
    }
    app.clock.advance(days(30));
    assert!(app.login(name, PASSWORD).await.is_err(), "still locked a month later");
    let admin = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token;
    let user = app.get_user(&admin, &gil.user_id).await.unwrap();
    assert_eq!(user.failed_login_count, 100);
    app.unlock(&admin, &gil.user_id).await.unwrap();
    app.login_ok(name, PASSWORD).await;
    app.finish().await;
}

async fn one_address_with_too_many_failures_is_refused_for_a_while(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| {
        c.password_login_failures = 3;
        c.password_login_failure_window = std::time::Duration::from_secs(60);
    })
    .await;
    app.login("nobody@example.com", "a wrong guess").await.unwrap_err();
    app.change_password(None, "nobody@example.com", "a wrong guess", NEW_PASSWORD)
        .await
        .unwrap_err();
    let third = app.login(ADMIN_USER, "a wrong guess").await.unwrap_err();
    assert_error(&third, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let before = app.db.count("audit_events").await;
    let refused = app.login(ADMIN_USER, ADMIN_PASSWORD).await.unwrap_err();
    assert_error(&refused, Code::ResourceExhausted, "TOO_MANY_FAILED_LOGINS");
    let retry = refused
        .get_details_retry_info()
        .expect("RetryInfo")
        .retry_delay
        .unwrap();
    assert_eq!(
        retry,
        std::time::Duration::from_secs(20),
        "a failure's share of the window"
    );
    assert_eq!(app.db.count("audit_events").await, before, "refused before any work");
    // Tokens and sessions are not password logins.
    assert!(app.validate(&app.admin_token).await.valid);
    app.clock.advance(Duration::seconds(20));
    app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    app.finish().await;
}

async fn weak_passwords_are_refused_wherever_a_password_is_set(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let name = "hal@example.com";
    let hal = user(&app, name).await;
    let too_long = "x".repeat(513);
    let cases = [
        ("password1", "commonly used"),
        ("Qwertyuiop", "commonly used"),
        ("short", "at least 8"),
        ("hal@example.com", "your user name"),
        ("hal-and-friends", "your user name"),
        (too_long.as_str(), "at most 512 bytes"),
    ];
    for (password, says) in cases {
        let create = pb::CreateUserRequest {
            user: Some(pb::User {
                tenant_id: app.admin_tenant_id.clone(),
                user_name: "hal@example.org".into(),
                ..Default::default()
            }),
            password: password.into(),
        };
        let created = app
            .admin
            .clone()
            .create_user(bearer(create, &app.admin_token))
            .await
            .unwrap_err();
        let set = app
            .set_password(&app.admin_token, &hal.user_id, password, true)
            .await
            .unwrap_err();
        let changed = app.change_password(None, name, PASSWORD, password).await.unwrap_err();
        for (status, field) in [(&created, "password"), (&set, "password"), (&changed, "new_password")] {
            assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
            let violation = &status.get_details_bad_request().unwrap().field_violations[0];
            assert_eq!(violation.field, field);
            assert!(
                violation.description.contains(says),
                "{password}: {}",
                violation.description
            );
            if password.len() > 4 {
                assert!(!status.message().contains(password), "the password is repeated");
            }
        }
    }
    let bootstrap = BootstrapRequest {
        tenant_name: "Another".into(),
        user_name: "root".into(),
        password: "iloveyou".into(),
        email: String::new(),
    };
    assert!(app.identity.bootstrap(&bootstrap).await.is_err(), "bootstrap too");
    app.login_ok(name, PASSWORD).await;
    app.finish().await;
}

async fn passwords_match_in_their_nfkc_form(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let name = "ida@example.com";
    let composed = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
    app.create_user(&app.admin_tenant_id, name, composed, &[]).await;
    let decomposed = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
    app.login_ok(name, decomposed).await;
    app.login_ok(name, "ｃａｆé crème brûlée").await;
    assert!(
        app.login(name, "cafe creme brulee").await.is_err(),
        "accents still count"
    );
    let same = app.change_password(None, name, composed, decomposed).await.unwrap_err();
    assert_eq!(
        violated_fields(&same),
        ["new_password"],
        "the same password, typed otherwise"
    );
    app.finish().await;
}

async fn a_raised_cost_rehashes_passwords_at_login(env: TestEnv) {
    let mut app = TestApp::spawn_with(&env, cheap_hashing).await;
    let name = "jon@example.com";
    user(&app, name).await;
    let stored = |rows: Vec<String>| rows.into_iter().find(|r| r.contains(name)).unwrap();
    assert!(stored(app.db.rows_as_text("users").await).contains("$argon2id$v=19$m=64,t=1,p=1$"));
    app.config.argon2_memory_kib = 128;
    app.config.argon2_iterations = 2;
    app.restart().await;
    assert!(
        stored(app.db.rows_as_text("users").await).contains("m=64,t=1"),
        "not before a login"
    );
    app.login_ok(name, PASSWORD).await;
    let after = stored(app.db.rows_as_text("users").await);
    assert!(after.contains("$argon2id$v=19$m=128,t=2,p=1$"), "{after}");
    app.login_ok(name, PASSWORD).await;
    app.finish().await;
}

async fn tenants_set_their_password_rules_and_lockout(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = app.create_tenant("Strict").await;
    assert_eq!(tenant.min_password_length, 8);
    assert_eq!(tenant.lockout_failures, 5);
    assert_eq!(tenant.lockout_duration.unwrap().seconds, 60);
    assert_eq!(tenant.max_lockout_duration.unwrap().seconds, 900);
    let strict = pb::Tenant {
        min_password_length: 16,
        ..tenant.clone()
    };
    let strict = app
        .update_tenant(&app.admin_token, strict, &["min_password_length"])
        .await
        .unwrap();
    assert_eq!(strict.min_password_length, 16);
    let create = pb::CreateUserRequest {
        user: Some(pb::User {
            tenant_id: tenant.tenant_id.clone(),
            user_name: "kim@example.com".into(),
            ..Default::default()
        }),
        password: "fifteen chars!!".into(),
    };
    let refused = app
        .admin
        .clone()
        .create_user(bearer(create, &app.admin_token))
        .await
        .unwrap_err();
    assert!(refused.message().contains("at least 16"), "{}", refused.message());
    let bad = pb::Tenant {
        min_password_length: 7,
        lockout_failures: 101,
        lockout_duration: Some(prost_types::Duration { seconds: 600, nanos: 0 }),
        max_lockout_duration: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
        ..tenant
    };
    let paths = [
        "min_password_length",
        "lockout_failures",
        "lockout_duration",
        "max_lockout_duration",
    ];
    let refused = app.update_tenant(&app.admin_token, bad, &paths).await.unwrap_err();
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(fields, ["tenant.lockout_failures", "tenant.min_password_length"]);
    app.finish().await;
}

/// Runs the real binary over the test's database with every log line on (`RUST_LOG=trace`), takes
/// passwords through their whole life cycle, and looks for them in every table and log line.
async fn no_password_reaches_a_table_or_a_log_line(env: TestEnv) {
    let mut app = TestApp::spawn_with(&env, cheap_hashing).await;
    let server = TracedServer::replace(&mut app).await;
    let (mut login, mut admin) = (app.login.clone(), app.admin.clone());
    let sign_in = |user_name: &str, password: &str| pb::LoginRequest {
        user_name: user_name.into(),
        password: password.into(),
        token: String::new(),
        device_name: String::new(),
    };
    let (created, wrong, changed, reset) = (
        "first pass phrase here",
        "wrong pass phrase here",
        "changed pass phrase here",
        "reset pass phrase here",
    );
    let admin_token = login
        .login(sign_in(ADMIN_USER, ADMIN_PASSWORD))
        .await
        .unwrap()
        .into_inner()
        .session_token;
    let request = pb::CreateUserRequest {
        user: Some(pb::User {
            tenant_id: app.admin_tenant_id.clone(),
            user_name: "lou@example.com".into(),
            ..Default::default()
        }),
        password: created.into(),
    };
    let lou = admin
        .create_user(bearer(request, &admin_token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    login.login(sign_in("lou@example.com", wrong)).await.unwrap_err();
    let change = pb::ChangePasswordRequest {
        user_name: "lou@example.com".into(),
        current_password: created.into(),
        new_password: changed.into(),
    };
    login.change_password(change).await.unwrap();
    let set = pb::SetUserPasswordRequest {
        user_id: lou.user_id,
        password: reset.into(),
        skip_force_change_password: false,
    };
    // A caller that puts its token where the request id goes: it is replaced, never recorded.
    let mut set = bearer(set, &admin_token);
    set.metadata_mut().insert("x-request-id", admin_token.parse().unwrap());
    admin.set_user_password(set).await.unwrap();
    login.login(sign_in("lou@example.com", reset)).await.unwrap();

    let log = server.stop();
    assert!(
        log.iter().any(|line| line.contains("request_id=")),
        "the calls' spans are in the log"
    );
    let secrets = [ADMIN_PASSWORD, created, wrong, changed, reset, admin_token.as_str()];
    for line in &log {
        for secret in secrets {
            assert!(!line.contains(secret), "a password in a log line: {line}");
        }
    }
    for table in app.db.tables().await {
        for row in app.db.rows_as_text(&table).await {
            for secret in secrets {
                assert!(!row.contains(secret), "a password in table {table}: {row}");
            }
        }
    }
    app.finish().await;
}
