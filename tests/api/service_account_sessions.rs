//! Service-account sessions: the deprecated CloudBees createSession, getSessions, modifySession
//! and deleteSession, with their expiration_date read in an IANA time zone.

// The calls are deprecated in the contract, and tested all the same.
#![allow(deprecated)]

use chrono::{DateTime, Duration, Utc};
use identityd::grpc::pb;
use tonic::{Code, Status};

use crate::support::app::{TestApp, TestEnv, assert_error, bearer, violated_fields};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_service_account_session_opens_lists_changes_and_ends,
        expiration_dates_are_read_in_their_time_zone_across_clock_changes,
        bad_expiration_dates_and_zones_are_invalid_arguments,
        a_deleted_session_is_refused_at_once_on_another_instance,
        a_service_account_session_opens_none_of_identityds_own_calls,
        a_service_account_session_has_no_idle_timeout_but_expires,
        user_sessions_are_not_service_account_sessions,
        an_unknown_service_account_is_not_found,
    ]
}

/// Lets tests use fixed dates years ahead.
fn far_expiries(config: &mut identityd::config::Config) {
    config.service_account_session_max_lifetime = std::time::Duration::from_secs(20 * 365 * 86_400);
}

impl TestApp {
    /// Creates a service account in the bootstrap administrator's tenant.
    async fn service_account(&self, name: &str) -> pb::ServiceAccount {
        let request = pb::CreateServiceAccountRequest {
            tenant_id: self.admin_tenant_id.clone(),
            name: name.into(),
            description: "webhooks".into(),
        };
        self.admin
            .clone()
            .create_service_account(bearer(request, &self.admin_token))
            .await
            .expect("create a service account")
            .into_inner()
            .service_account
            .unwrap()
    }

    async fn open_sa_session(&self, name: &str, date: &str, zone: &str) -> Result<pb::CreateSessionResponse, Status> {
        let request = pb::CreateSessionRequest {
            service_account_name: name.into(),
            expiration_date: date.into(),
            time_zone: zone.into(),
        };
        let response = self
            .sessions
            .clone()
            .create_session(bearer(request, &self.admin_token))
            .await?;
        Ok(response.into_inner())
    }

    async fn update_sa_session(&self, session_id: &str, date: &str, zone: &str) -> Result<pb::Session, Status> {
        let request = pb::UpdateSessionRequest {
            session_id: session_id.into(),
            expiration_date: date.into(),
            time_zone: zone.into(),
        };
        let response = self
            .sessions
            .clone()
            .update_session(bearer(request, &self.admin_token))
            .await?;
        Ok(response.into_inner().session.unwrap())
    }

    async fn delete_sa_session(&self, session_id: &str) -> Result<(), Status> {
        let request = pb::DeleteSessionRequest {
            session_id: session_id.into(),
        };
        self.sessions
            .clone()
            .delete_session(bearer(request, &self.admin_token))
            .await
            .map(|_| ())
    }

    async fn sa_sessions(&self, name: &str) -> Vec<pb::Session> {
        let request = pb::ListSessionsRequest {
            service_account_name: name.into(),
            ..Default::default()
        };
        self.sessions
            .clone()
            .list_sessions(bearer(request, &self.admin_token))
            .await
            .expect("list a service account's sessions")
            .into_inner()
            .sessions
    }
}

fn utc(session: &pb::Session) -> DateTime<Utc> {
    let t = session.expire_time.as_ref().expect("an expire_time");
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn a_service_account_session_opens_lists_changes_and_ends(env: TestEnv) {
    let app = TestApp::spawn_with(&env, far_expiries).await;
    let account = app.service_account("deploy-hook").await;
    let opened = app
        .open_sa_session("Deploy-Hook", "2031-07-01T12:00:00", "Europe/Berlin")
        .await
        .expect("open a session");
    let session = opened.session.unwrap();
    assert_eq!(session.kind, pb::SessionKind::ServiceAccount as i32);
    assert_eq!(session.service_account_name, "deploy-hook");
    assert_eq!(session.service_account_id, account.service_account_id);
    assert_eq!(session.user_id, "", "a service account's session has no user");
    assert_eq!(session.tenant_id, app.admin_tenant_id);
    assert_eq!(
        rfc3339(utc(&session)),
        "2031-07-01T10:00:00Z",
        "noon in Berlin's summer"
    );

    let v = app.validate(&opened.session_token).await;
    assert!(v.valid);
    assert_eq!(v.principal_kind, pb::PrincipalKind::ServiceAccount as i32);
    assert_eq!(v.service_account_id, account.service_account_id);
    assert_eq!(v.service_account_name, "deploy-hook");
    assert_eq!((v.user_id.as_str(), v.user_name.as_str()), ("", ""));
    assert_eq!(v.session_id, session.session_id);
    assert_eq!(v.tenant_id, app.admin_tenant_id);
    assert_eq!(v.expire_time, session.expire_time);
    assert_eq!(
        app.validate(&app.admin_token).await.principal_kind,
        pb::PrincipalKind::User as i32
    );

    let listed = app.sa_sessions("deploy-hook").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, session.session_id);
    assert!(
        app.my_sessions(&app.admin_token)
            .await
            .unwrap()
            .iter()
            .all(|s| s.session_id != session.session_id)
    );

    let changed = app
        .update_sa_session(&session.session_id, "2031-12-24", "America/New_York")
        .await
        .expect("change the expiry");
    assert_eq!(
        rfc3339(utc(&changed)),
        "2031-12-25T05:00:00Z",
        "through Christmas Eve in New York"
    );
    assert_eq!(
        app.validate(&opened.session_token).await.expire_time,
        changed.expire_time
    );

    app.delete_sa_session(&session.session_id).await.expect("end it");
    assert!(!app.validate(&opened.session_token).await.valid);
    assert!(app.sa_sessions("deploy-hook").await.is_empty());
    let again = app.delete_sa_session(&session.session_id).await.unwrap_err();
    assert_error(&again, Code::NotFound, "NOT_FOUND");
    let late = app
        .update_sa_session(&session.session_id, "2031-12-24", "")
        .await
        .unwrap_err();
    assert_error(&late, Code::NotFound, "NOT_FOUND");

    let actions: Vec<String> = app
        .admin
        .clone()
        .list_audit_events(bearer(
            pb::ListAuditEventsRequest {
                tenant_id: app.admin_tenant_id.clone(),
                ..Default::default()
            },
            &app.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .audit_events
        .into_iter()
        .filter(|e| e.session_id == session.session_id)
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "service_account_session.created",
            "service_account_session.updated",
            "service_account_session.deleted"
        ]
    );
    app.finish().await;
}

/// Each case: the date, the zone, and the exact instant it means (or None: refused).
const CASES: &[(&str, &str, Option<&str>)] = &[
    // Berlin goes from +01:00 to +02:00 at 02:00 on 2031-03-30, and back at 03:00 on 2031-10-26.
    ("2031-03-30T01:59:59", "Europe/Berlin", Some("2031-03-30T00:59:59Z")),
    ("2031-03-30T02:30:00", "Europe/Berlin", None),
    ("2031-03-30T03:00:00", "Europe/Berlin", Some("2031-03-30T01:00:00Z")),
    ("2031-10-26T02:30:00", "Europe/Berlin", Some("2031-10-26T00:30:00Z")),
    ("2031-10-26T03:30:00", "Europe/Berlin", Some("2031-10-26T02:30:00Z")),
    // New York: forward at 02:00 on 2031-03-09, back at 02:00 on 2031-11-02.
    ("2031-03-09T02:15:00", "America/New_York", None),
    ("2031-11-02T01:30:00", "America/New_York", Some("2031-11-02T05:30:00Z")),
    ("2031-07-01 12:00", "America/New_York", Some("2031-07-01T16:00:00Z")),
    // Lord Howe Island moves by half an hour: +10:30 to +11:00 at 02:00 on 2031-10-05 (02:00 to
    // 02:30 never happens), back at 02:00 on 2031-04-06 (01:30 to 02:00 happens twice).
    ("2031-10-05T02:15:00", "Australia/Lord_Howe", None),
    (
        "2031-10-05T02:30:00",
        "Australia/Lord_Howe",
        Some("2031-10-04T15:30:00Z"),
    ),
    (
        "2031-04-06T01:45:00",
        "Australia/Lord_Howe",
        Some("2031-04-05T14:45:00Z"),
    ),
    (
        "2031-04-06T02:00:00",
        "Australia/Lord_Howe",
        Some("2031-04-05T15:30:00Z"),
    ),
    // An offset wins over the zone; Z is an offset too.
    (
        "2031-06-01T12:00:00+05:00",
        "Europe/Berlin",
        Some("2031-06-01T07:00:00Z"),
    ),
    (
        "2031-06-01T12:00:00Z",
        "Australia/Lord_Howe",
        Some("2031-06-01T12:00:00Z"),
    ),
    // A date lasts through that whole day in the zone.
    ("2031-06-01", "Europe/Berlin", Some("2031-06-01T22:00:00Z")),
    ("2031-06-01", "", Some("2031-06-02T00:00:00Z")),
    ("2031-03-29", "Europe/Berlin", Some("2031-03-29T23:00:00Z")),
    ("2031-10-05", "Australia/Lord_Howe", Some("2031-10-05T13:00:00Z")),
];

async fn expiration_dates_are_read_in_their_time_zone_across_clock_changes(env: TestEnv) {
    let app = TestApp::spawn_with(&env, far_expiries).await;
    app.service_account("hook").await;
    let mut wrong = Vec::new();
    for &(date, zone, want) in CASES {
        let got = match app.open_sa_session("hook", date, zone).await {
            Ok(opened) => Some(rfc3339(utc(&opened.session.unwrap()))),
            Err(status) => {
                assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
                assert_eq!(
                    violated_fields(&status),
                    ["expiration_date"],
                    "{date} in {zone}: {status:?}"
                );
                assert!(status.message().contains("does not exist"), "{status:?}");
                None
            }
        };
        if got.as_deref() != want {
            wrong.push(format!("{date} in {zone:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // UpdateSession reads its date the same way.
    let opened = app.open_sa_session("hook", "2031-06-01", "").await.unwrap();
    let id = opened.session.unwrap().session_id;
    let gap = app
        .update_sa_session(&id, "2031-03-30T02:30:00", "Europe/Berlin")
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&gap), ["expiration_date"]);
    let fold = app
        .update_sa_session(&id, "2031-04-06T01:45:00", "Australia/Lord_Howe")
        .await
        .unwrap();
    assert_eq!(rfc3339(utc(&fold)), "2031-04-05T14:45:00Z");
    app.finish().await;
}

async fn bad_expiration_dates_and_zones_are_invalid_arguments(env: TestEnv) {
    // The default maximum: a year ahead.
    let app = TestApp::spawn(&env).await;
    app.service_account("hook").await;
    let now = app.clock_now();
    let within = rfc3339(now + Duration::days(300));
    let beyond = rfc3339(now + Duration::days(400));
    let yesterday = (now - Duration::days(1)).date_naive().to_string();
    let cases: &[(&str, &str, &[&str])] = &[
        (&yesterday, "", &["expiration_date"]),
        ("2000-01-01T00:00:00Z", "", &["expiration_date"]),
        (&beyond, "", &["expiration_date"]),
        (&within, "Mars/Olympus", &["time_zone"]),
        (&within, "CEST", &["time_zone"]),
        ("next tuesday", "", &["expiration_date"]),
        ("2031-02-30", "", &["expiration_date"]),
        ("2031-06-01T25:00:00", "", &["expiration_date"]),
        ("", "", &["expiration_date"]),
        ("garbage", "Not/A_Zone", &["time_zone", "expiration_date"]),
    ];
    for &(date, zone, fields) in cases {
        let status = app.open_sa_session("hook", date, zone).await.unwrap_err();
        assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), fields, "{date:?} in {zone:?}");
    }
    let opened = app.open_sa_session("hook", &within, "Europe/Berlin").await.unwrap();
    let id = opened.session.unwrap().session_id;
    let status = app.update_sa_session(&id, &beyond, "").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["expiration_date"]);
    let status = app
        .update_sa_session(&id, &within, "Nowhere/Special")
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["time_zone"]);
    assert_eq!(
        app.db.count("sessions").await,
        2,
        "nothing but the administrator's and this one"
    );
    app.finish().await;
}

async fn a_deleted_session_is_refused_at_once_on_another_instance(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.validation_cache_ttl = std::time::Duration::from_secs(3600)).await;
    app.service_account("hook").await;
    let (mut other, instance) = app.second_instance().await;
    let date = rfc3339(app.clock_now() + Duration::days(30));
    let opened = app.open_sa_session("hook", &date, "").await.unwrap();
    let validate = || pb::ValidateSessionRequest {
        session_token: opened.session_token.clone(),
    };
    let there = other.validate_session(validate()).await.unwrap().into_inner();
    assert!(there.valid, "cached there");
    assert_eq!(there.service_account_name, "hook");
    app.delete_sa_session(&opened.session.as_ref().unwrap().session_id)
        .await
        .unwrap();
    assert!(!app.validate(&opened.session_token).await.valid, "here at once");
    // The other instance learns of it from the store's record of ended sessions, as of a logout.
    let start = std::time::Instant::now();
    while other.validate_session(validate()).await.unwrap().into_inner().valid {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the deletion never reached the other instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    instance.stop().await;
    app.finish().await;
}

async fn a_service_account_session_opens_none_of_identityds_own_calls(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    app.service_account("hook").await;
    let date = rfc3339(app.clock_now() + Duration::days(30));
    let token = app.open_sa_session("hook", &date, "").await.unwrap().session_token;
    let status = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &token))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let status = app.my_sessions(&token).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    app.finish().await;
}

async fn a_service_account_session_has_no_idle_timeout_but_expires(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    app.service_account("hook").await;
    let date = rfc3339(app.clock_now() + Duration::days(10));
    let token = app.open_sa_session("hook", &date, "").await.unwrap().session_token;
    app.clock.advance(Duration::days(9));
    assert!(
        app.validate(&token).await.valid,
        "nine days unused, far past the idle timeout"
    );
    app.clock.advance(Duration::days(1));
    assert!(!app.validate(&token).await.valid, "at its expiry");
    app.finish().await;
}

async fn user_sessions_are_not_service_account_sessions(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let other = app
        .login_ok(crate::support::app::ADMIN_USER, crate::support::app::ADMIN_PASSWORD)
        .await;
    let id = other.session.unwrap().session_id;
    let date = rfc3339(app.clock_now() + Duration::days(10));
    let status = app.update_sa_session(&id, &date, "").await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let status = app.delete_sa_session(&id).await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert!(app.validate(&other.session_token).await.valid);
    app.finish().await;
}

async fn an_unknown_service_account_is_not_found(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let date = rfc3339(app.clock_now() + Duration::days(10));
    let status = app.open_sa_session("nobody", &date, "").await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    // One of another tenant is not found by name either: names are read in the caller's tenant.
    let tenant = app.create_tenant("Elsewhere").await;
    let request = pb::CreateServiceAccountRequest {
        tenant_id: tenant.tenant_id,
        name: "theirs".into(),
        ..Default::default()
    };
    app.admin
        .clone()
        .create_service_account(bearer(request, &app.admin_token))
        .await
        .unwrap();
    let status = app.open_sa_session("theirs", &date, "").await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let request = pb::ListSessionsRequest {
        service_account_name: "theirs".into(),
        ..Default::default()
    };
    let status = app
        .sessions
        .clone()
        .list_sessions(bearer(request, &app.admin_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    app.finish().await;
}
