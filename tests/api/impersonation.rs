//! Customer-support login, proxy login and switch-back: who may impersonate whom, what an
//! impersonated session may do and for how long, how the real user gets their own session back,
//! and that both tenants and the user acted as can see it happen.

use chrono::Duration;
use identityd::grpc::pb;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::support::app::{TestApp, TestEnv, assert_error, bearer, violated_fields};
use crate::support::calls::cheap_hashing;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        who_may_impersonate_whom,
        switch_back_resumes_the_original_session_the_login_came_from,
        switch_back_without_an_original_session_opens_a_fresh_one,
        impersonated_sessions_may_not_mint_credentials_or_change_passwords_and_roles,
        a_support_session_administers_the_client_tenant_and_nothing_else,
        impersonated_sessions_end_after_their_own_lifetime_and_idle_timeout,
        impersonation_is_audited_in_both_tenants,
        the_user_acted_as_sees_the_impersonation_and_may_end_it,
        disabling_the_real_user_ends_their_impersonations,
        a_client_tenant_switches_support_access_off_and_only_system_administrators_choose_served_tenants,
        wrong_passwords_at_impersonating_logins_lock_the_account_as_at_login,
        an_impersonation_ends_when_what_allowed_it_changes,
        bad_input_names_every_bad_field,
        the_sweep_deletes_an_original_session_before_its_impersonation,
    ]
}

const PASSWORD: &str = "a password for impersonation";

fn with_bearer<T>(message: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(token) => bearer(message, token),
        None => Request::new(message),
    }
}

impl TestApp {
    pub async fn proxy_login(
        &self,
        original: Option<&str>,
        user_name: &str,
        password: &str,
        proxy_user_id: &str,
    ) -> Result<pb::ProxyLoginResponse, Status> {
        let request = pb::ProxyLoginRequest {
            user_name: user_name.into(),
            password: password.into(),
            proxy_user_id: proxy_user_id.into(),
        };
        let response = self.login.clone().proxy_login(with_bearer(request, original)).await?;
        Ok(response.into_inner())
    }

    pub async fn support_login(
        &self,
        original: Option<&str>,
        user_name: &str,
        password: &str,
        client_tenant_id: &str,
    ) -> Result<pb::LoginAsCustomerSupportResponse, Status> {
        let request = pb::LoginAsCustomerSupportRequest {
            user_name: user_name.into(),
            password: password.into(),
            client_tenant_id: client_tenant_id.into(),
        };
        let response = self
            .login
            .clone()
            .login_as_customer_support(with_bearer(request, original))
            .await?;
        Ok(response.into_inner())
    }

    pub async fn switch_back(&self, token: &str) -> Result<pb::SwitchBackResponse, Status> {
        let request = bearer(pb::SwitchBackRequest {}, token);
        Ok(self.login.clone().switch_back(request).await?.into_inner())
    }

    /// The audit events of a tenant with an action, as the bootstrap administrator reads them.
    async fn audit_of(&self, tenant_id: &str, action: &str) -> Vec<pb::AuditEvent> {
        let request = pb::ListAuditEventsRequest {
            tenant_id: tenant_id.into(),
            action: action.into(),
            ..Default::default()
        };
        self.admin
            .clone()
            .list_audit_events(bearer(request, &self.admin_token))
            .await
            .expect("list audit events")
            .into_inner()
            .audit_events
    }

    async fn set_served(&self, tenant_id: &str, served: &[&str]) -> pb::Tenant {
        let tenant = pb::Tenant {
            tenant_id: tenant_id.into(),
            served_tenant_ids: served.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        self.update_tenant(&self.admin_token, tenant, &["served_tenant_ids"])
            .await
            .expect("set the served tenants")
    }

    async fn allow_support(&self, token: &str, tenant_id: &str, allow: bool) -> Result<pb::Tenant, Status> {
        let tenant = pb::Tenant {
            tenant_id: tenant_id.into(),
            allow_customer_support: Some(allow),
            ..Default::default()
        };
        self.update_tenant(token, tenant, &["allow_customer_support"]).await
    }
}

/// A support tenant serving a client tenant (and a second, switched-off one), a tenant it does
/// not serve, and users in each.
struct Desk {
    home: String,
    client: String,
    unserved: String,
    switched_off: String,
}

async fn desk(app: &TestApp) -> Desk {
    let home = app.create_tenant("Home").await.tenant_id;
    let client = app.create_tenant("Client").await.tenant_id;
    let unserved = app.create_tenant("Unserved").await.tenant_id;
    let switched_off = app.create_tenant("Switched off").await.tenant_id;
    app.set_served(&home, &[&client, &switched_off]).await;
    app.allow_support(&app.admin_token, &switched_off, false)
        .await
        .expect("switch support off");
    Desk {
        home,
        client,
        unserved,
        switched_off,
    }
}

fn answer<T>(result: &Result<T, Status>) -> Result<(), (Code, String)> {
    match result {
        Ok(_) => Ok(()),
        Err(status) => {
            let reason = status.get_details_error_info().map(|i| i.reason).unwrap_or_default();
            Err((status.code(), reason))
        }
    }
}

type Want = Result<(), (Code, &'static str)>;
const OK: Want = Ok(());
const DENIED: Want = Err((Code::PermissionDenied, "PERMISSION_DENIED"));
const NOT_FOUND: Want = Err((Code::NotFound, "NOT_FOUND"));
const PRECONDITION: Want = Err((Code::FailedPrecondition, "FAILED_PRECONDITION"));
const NESTED: Want = Err((Code::PermissionDenied, "IMPERSONATION_NOT_ALLOWED"));
const WRONG_PASSWORD: Want = Err((Code::Unauthenticated, "INVALID_CREDENTIALS"));

/// The permission matrix: callers holding each role, against targets of their own, a served, an
/// unserved and a switched-off tenant, targets holding more roles, disabled targets, themselves,
/// a nested attempt and a wrong password.
async fn who_may_impersonate_whom(env: TestEnv) {
    use pb::Role::{CustomerSupport, ProxyLogin, SystemAdmin, TenantAdmin};
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let d = desk(&app).await;
    let user = |tenant: &str, name: &str, roles: &'static [pb::Role]| {
        let (app, tenant, name) = (&app, tenant.to_owned(), format!("{name}@example.com"));
        async move { app.create_user(&tenant, &name, PASSWORD, roles).await }
    };
    // Callers, all of the home tenant.
    let plain = user(&d.home, "plain", &[]).await;
    let support = user(&d.home, "support", &[CustomerSupport]).await;
    let proxy = user(&d.home, "proxy", &[ProxyLogin]).await;
    let admin_proxy = user(&d.home, "admin-proxy", &[TenantAdmin, ProxyLogin]).await;
    let system = user(&d.home, "system", &[SystemAdmin]).await;
    // Targets.
    let colleague = user(&d.home, "colleague", &[]).await;
    let colleague_admin = user(&d.home, "colleague-admin", &[TenantAdmin]).await;
    let colleague_system = user(&d.home, "colleague-system", &[SystemAdmin]).await;
    let disabled = user(&d.home, "disabled", &[]).await;
    app.set_disabled(&app.admin_token, &disabled.user_id, true)
        .await
        .unwrap();
    let customer = user(&d.client, "customer", &[]).await;
    let stranger = user(&d.unserved, "stranger", &[]).await;
    let shy = user(&d.switched_off, "shy", &[]).await;
    let unknown_user = uuid::Uuid::now_v7().to_string();
    let unknown_tenant = uuid::Uuid::now_v7().to_string();

    // A session in which the proxy (and the support user) already impersonate: the bearer of the
    // nested attempts.
    let proxy_session = app
        .proxy_login(None, &proxy.user_name, PASSWORD, &colleague.user_id)
        .await
        .unwrap()
        .session_token;
    let support_session = app
        .support_login(None, &support.user_name, PASSWORD, &d.client)
        .await
        .unwrap()
        .session_token;

    let proxies: Vec<(&str, &pb::User, &str, Option<&str>, Want)> = vec![
        ("no role", &plain, &colleague.user_id, None, DENIED),
        ("support role only", &support, &colleague.user_id, None, DENIED),
        ("same tenant", &proxy, &colleague.user_id, None, OK),
        ("served tenant", &proxy, &customer.user_id, None, OK),
        ("unserved tenant", &proxy, &stranger.user_id, None, NOT_FOUND),
        ("unknown user", &proxy, &unknown_user, None, NOT_FOUND),
        ("support switched off", &proxy, &shy.user_id, None, DENIED),
        (
            "target holds more roles",
            &proxy,
            &colleague_admin.user_id,
            None,
            DENIED,
        ),
        (
            "target holds the same roles",
            &admin_proxy,
            &colleague_admin.user_id,
            None,
            OK,
        ),
        (
            "tenant admin into a system admin",
            &admin_proxy,
            &colleague_system.user_id,
            None,
            DENIED,
        ),
        (
            "system admin into a system admin",
            &system,
            &colleague_system.user_id,
            None,
            OK,
        ),
        (
            "system admin, unserved tenant",
            &system,
            &stranger.user_id,
            None,
            NOT_FOUND,
        ),
        ("disabled target", &proxy, &disabled.user_id, None, PRECONDITION),
        ("themself", &proxy, &proxy.user_id, None, PRECONDITION),
        ("nested", &proxy, &customer.user_id, Some(&proxy_session), NESTED),
    ];
    let mut wrong = Vec::new();
    for (case, caller, target, original, want) in proxies {
        let got = app.proxy_login(original, &caller.user_name, PASSWORD, target).await;
        if let Ok(login) = &got {
            let session = login.session.as_ref().unwrap();
            assert_eq!(session.kind, pb::SessionKind::Proxy as i32, "{case}");
            assert_eq!(session.impersonator_user_id, caller.user_id, "{case}");
            assert_eq!(&session.user_id, target, "{case}");
            assert_eq!(login.user.as_ref().unwrap().user_id, *target, "{case}");
            let validity = app.validate(&login.session_token).await;
            assert!(validity.valid, "{case}");
            assert_eq!(validity.impersonator_user_id, caller.user_id, "{case}");
        }
        let want = want.map_err(|(code, reason)| (code, reason.to_owned()));
        if answer(&got) != want {
            wrong.push(format!("proxy, {case}: want {want:?}, got {:?}", answer(&got)));
        }
    }
    let supports: Vec<(&str, &pb::User, &str, Option<&str>, Want)> = vec![
        ("no role", &plain, &d.client, None, DENIED),
        ("proxy role only", &proxy, &d.client, None, DENIED),
        ("served tenant", &support, &d.client, None, OK),
        ("unserved tenant", &support, &d.unserved, None, DENIED),
        ("unknown tenant", &support, &unknown_tenant, None, DENIED),
        ("support switched off", &support, &d.switched_off, None, DENIED),
        ("system admin, served tenant", &system, &d.client, None, OK),
        ("system admin, unserved tenant", &system, &d.unserved, None, DENIED),
        ("nested", &support, &d.client, Some(&support_session), NESTED),
    ];
    for (case, caller, client, original, want) in supports {
        let got = app.support_login(original, &caller.user_name, PASSWORD, client).await;
        if let Ok(login) = &got {
            let session = login.session.as_ref().unwrap();
            assert_eq!(session.kind, pb::SessionKind::CustomerSupport as i32, "{case}");
            assert_eq!(session.impersonator_user_id, caller.user_id, "{case}");
            assert_eq!(session.user_id, caller.user_id, "{case}");
            assert_eq!(&session.tenant_id, client, "{case}");
            assert_eq!(&login.organization_id, client, "{case}");
        }
        let want = want.map_err(|(code, reason)| (code, reason.to_owned()));
        if answer(&got) != want {
            wrong.push(format!("support, {case}: want {want:?}, got {:?}", answer(&got)));
        }
    }
    assert!(wrong.is_empty(), "cells answering otherwise:\n{}", wrong.join("\n"));

    // A wrong password answers as Login does, whoever and wherever the target.
    let refused = app
        .proxy_login(None, &proxy.user_name, "not the password", &stranger.user_id)
        .await;
    assert_eq!(answer(&refused), WRONG_PASSWORD.map_err(|(c, r)| (c, r.to_owned())));
    let refused = app
        .support_login(None, &support.user_name, "not the password", &unknown_tenant)
        .await;
    assert_eq!(answer(&refused), WRONG_PASSWORD.map_err(|(c, r)| (c, r.to_owned())));
    app.finish().await;
}

/// A user of the home tenant holding the proxy role, a colleague to act as, and the user's own
/// session.
struct Proxying {
    real: pb::User,
    real_token: String,
    target: pb::User,
}

async fn proxying(app: &TestApp) -> Proxying {
    let tenant = app.create_tenant("Home").await.tenant_id;
    let real = app
        .create_user(&tenant, "real@example.com", PASSWORD, &[pb::Role::ProxyLogin])
        .await;
    let target = app.create_user(&tenant, "target@example.com", PASSWORD, &[]).await;
    let real_token = app.login_ok(&real.user_name, PASSWORD).await.session_token;
    Proxying {
        real,
        real_token,
        target,
    }
}

async fn switch_back_resumes_the_original_session_the_login_came_from(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let p = proxying(&app).await;
    let original = app.validate(&p.real_token).await;
    let proxied = app
        .proxy_login(Some(&p.real_token), &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    // Acting as the target, while the original session stays open and untouched.
    app.clock.advance(Duration::minutes(10));
    let me = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &proxied.session_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.user.unwrap().user_id, p.target.user_id);
    assert_eq!(me.session.unwrap().impersonator_user_id, p.real.user_id);
    let still = app.validate(&p.real_token).await;
    assert!(still.valid);
    assert_eq!(still.session_id, original.session_id);
    assert!(still.impersonator_user_id.is_empty());

    let back = app.switch_back(&proxied.session_token).await.unwrap();
    assert!(back.resumed_original_session);
    assert!(
        back.session_token.is_empty(),
        "no new secret: the client holds the original's"
    );
    assert_eq!(back.session.unwrap().session_id, original.session_id);
    assert_eq!(back.user.unwrap().user_id, p.real.user_id);
    assert!(
        !app.validate(&proxied.session_token).await.valid,
        "the proxy session ended"
    );
    assert!(app.validate(&p.real_token).await.valid, "the original goes on");

    // Switching back again, or from a session that impersonates nobody, is not possible.
    let again = app.switch_back(&proxied.session_token).await.unwrap_err();
    assert_error(&again, Code::Unauthenticated, "SESSION_INVALID");
    let plain = app.switch_back(&p.real_token).await.unwrap_err();
    assert_error(&plain, Code::FailedPrecondition, "FAILED_PRECONDITION");

    // A bearer of another user is refused, and opens nothing.
    let other = app.login_ok(&p.target.user_name, PASSWORD).await.session_token;
    let refused = app
        .proxy_login(Some(&other), &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap_err();
    assert_error(&refused, Code::FailedPrecondition, "FAILED_PRECONDITION");
    app.finish().await;
}

async fn switch_back_without_an_original_session_opens_a_fresh_one(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let p = proxying(&app).await;
    // No bearer on the login: SwitchBack opens a session of the real user.
    let proxied = app
        .proxy_login(None, &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    let back = app.switch_back(&proxied.session_token).await.unwrap();
    assert!(!back.resumed_original_session);
    assert!(!back.session_token.is_empty());
    let validity = app.validate(&back.session_token).await;
    assert!(validity.valid);
    assert_eq!(validity.user_id, p.real.user_id);
    assert!(validity.impersonator_user_id.is_empty());
    let session = back.session.unwrap();
    assert_eq!(session.kind, pb::SessionKind::Password as i32);
    assert!(!app.validate(&proxied.session_token).await.valid);

    // An original logged out meanwhile is not resumed: a fresh session takes its place.
    let proxied = app
        .proxy_login(Some(&p.real_token), &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &p.real_token))
        .await
        .unwrap();
    let back = app.switch_back(&proxied.session_token).await.unwrap();
    assert!(!back.resumed_original_session);
    assert!(app.validate(&back.session_token).await.valid);
    assert!(!app.validate(&p.real_token).await.valid);
    app.finish().await;
}

async fn impersonated_sessions_may_not_mint_credentials_or_change_passwords_and_roles(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = app.create_tenant("Home").await.tenant_id;
    let roles = [pb::Role::TenantAdmin, pb::Role::ProxyLogin];
    let real = app.create_user(&tenant, "real@example.com", PASSWORD, &roles).await;
    let target = app
        .create_user(&tenant, "target@example.com", PASSWORD, &[pb::Role::TenantAdmin])
        .await;
    let peer = app.create_user(&tenant, "peer@example.com", PASSWORD, &[]).await;
    let target_token = app.login_ok(&target.user_name, PASSWORD).await.session_token;
    app.create_token(&target_token, "theirs").await.unwrap();
    let token = app
        .proxy_login(None, &real.user_name, PASSWORD, &target.user_id)
        .await
        .unwrap()
        .session_token;

    let refused = |status: Status| assert_error(&status, Code::PermissionDenied, "IMPERSONATION_NOT_ALLOWED");
    refused(app.create_token(&token, "mine").await.unwrap_err());
    let rotate = pb::RotateUserAccessTokenRequest {
        user_access_token_name: "theirs".into(),
    };
    refused(
        app.tokens()
            .rotate_user_access_token(bearer(rotate, &token))
            .await
            .unwrap_err(),
    );
    let change = app
        .change_password(Some(&token), &target.user_name, PASSWORD, "a brand new password")
        .await;
    refused(change.unwrap_err());
    refused(
        app.set_password(&token, &peer.user_id, "a password set by proxy", true)
            .await
            .unwrap_err(),
    );
    refused(
        app.set_roles(&token, &peer.user_id, &[pb::Role::TenantAdmin])
            .await
            .unwrap_err(),
    );
    // What the target may otherwise do as an administrator still works: reading, fixing a profile.
    app.set_first_name(&token, &peer.user_id, "Fixed").await.unwrap();
    assert_eq!(app.get_user(&token, &peer.user_id).await.unwrap().first_name, "Fixed");
    // The target's password and roles are as they were.
    app.login_ok(&target.user_name, PASSWORD).await;
    assert!(
        app.get_user(&app.admin_token, &peer.user_id)
            .await
            .unwrap()
            .roles
            .is_empty()
    );
    app.finish().await;
}

async fn a_support_session_administers_the_client_tenant_and_nothing_else(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let home = app.create_tenant("Support desk").await.tenant_id;
    let client = app.create_tenant("Client").await.tenant_id;
    app.set_served(&home, &[&client]).await;
    // A system administrator with the support role still acts as a tenant administrator only.
    let roles = [pb::Role::CustomerSupport, pb::Role::SystemAdmin];
    let support = app.create_user(&home, "support@example.com", PASSWORD, &roles).await;
    let customer = app.create_user(&client, "customer@example.com", PASSWORD, &[]).await;
    let colleague = app.create_user(&home, "colleague@example.com", PASSWORD, &[]).await;
    let login = app
        .support_login(None, &support.user_name, PASSWORD, &client)
        .await
        .unwrap();
    assert_eq!(login.organization_name, "Client");
    assert!(!login.is_force_change_password);
    let token = login.session_token;

    app.set_first_name(&token, &customer.user_id, "Helped").await.unwrap();
    let created = pb::CreateUserRequest {
        user: Some(pb::User {
            tenant_id: client.clone(),
            user_name: "new@example.com".into(),
            ..Default::default()
        }),
        password: PASSWORD.into(),
    };
    app.admin.clone().create_user(bearer(created, &token)).await.unwrap();
    // Not the support user's own tenant, nor any other: not found.
    let elsewhere = app.get_user(&token, &colleague.user_id).await.unwrap_err();
    assert_error(&elsewhere, Code::NotFound, "NOT_FOUND");
    let new_tenant = pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: "Made by support".into(),
            ..Default::default()
        }),
    };
    let tenants = app
        .admin
        .clone()
        .create_tenant(bearer(new_tenant, &token))
        .await
        .unwrap_err();
    assert_error(&tenants, Code::PermissionDenied, "PERMISSION_DENIED");
    // Nor a role to anyone, nor a password.
    let roles = app.set_roles(&token, &customer.user_id, &[pb::Role::TenantAdmin]).await;
    assert_error(&roles.unwrap_err(), Code::PermissionDenied, "IMPERSONATION_NOT_ALLOWED");
    let password = app
        .set_password(&token, &customer.user_id, "a password by support", true)
        .await;
    assert_error(
        &password.unwrap_err(),
        Code::PermissionDenied,
        "IMPERSONATION_NOT_ALLOWED",
    );

    let back = app.switch_back(&token).await.unwrap();
    assert_eq!(back.organization_id, home);
    assert_eq!(back.user.unwrap().user_id, support.user_id);
    app.finish().await;
}

async fn impersonated_sessions_end_after_their_own_lifetime_and_idle_timeout(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let p = proxying(&app).await;
    let proxy = |original: Option<String>| {
        let (app, p) = (&app, &p);
        async move {
            app.proxy_login(original.as_deref(), &p.real.user_name, PASSWORD, &p.target.user_id)
                .await
                .unwrap()
        }
    };
    // Idle for the default 15 minutes: it ends, while a plain session idle as long goes on.
    let idle = proxy(Some(p.real_token.clone())).await;
    let session = idle.session.clone().unwrap();
    let (created, expires) = (session.create_time.unwrap(), session.expire_time.unwrap());
    assert_eq!(
        expires.seconds - created.seconds,
        3600,
        "one hour, not the 12 of a login"
    );
    app.clock.advance(Duration::minutes(14));
    assert!(app.validate(&idle.session_token).await.valid);
    app.clock.advance(Duration::minutes(14));
    assert!(app.validate(&idle.session_token).await.valid, "used 14 minutes ago");
    app.clock.advance(Duration::minutes(15) + Duration::seconds(1));
    assert!(!app.validate(&idle.session_token).await.valid, "idle too long");
    assert!(
        app.validate(&p.real_token).await.valid,
        "a plain session idles for an hour"
    );

    // Used every ten minutes, it still ends an hour after it began.
    let busy = proxy(None).await;
    for _ in 0..5 {
        app.clock.advance(Duration::minutes(10));
        assert!(app.validate(&busy.session_token).await.valid);
    }
    app.clock.advance(Duration::minutes(10));
    assert!(!app.validate(&busy.session_token).await.valid, "past its lifetime");
    app.finish().await;

    // Both limits are configurable.
    let app = TestApp::spawn_with(&env, |c| {
        c.impersonation_lifetime = std::time::Duration::from_secs(1800);
        c.impersonation_idle_timeout = std::time::Duration::from_secs(300);
    })
    .await;
    let p = proxying(&app).await;
    let short = app
        .proxy_login(None, &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    let session = short.session.unwrap();
    assert_eq!(
        session.expire_time.unwrap().seconds - session.create_time.unwrap().seconds,
        1800
    );
    app.clock.advance(Duration::minutes(5) + Duration::seconds(1));
    assert!(!app.validate(&short.session_token).await.valid);
    app.finish().await;
}

async fn impersonation_is_audited_in_both_tenants(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let home = app.create_tenant("Support desk").await.tenant_id;
    let client = app.create_tenant("Client").await.tenant_id;
    app.set_served(&home, &[&client]).await;
    let roles = [pb::Role::CustomerSupport, pb::Role::ProxyLogin];
    let support = app.create_user(&home, "support@example.com", PASSWORD, &roles).await;
    let customer = app.create_user(&client, "customer@example.com", PASSWORD, &[]).await;

    // A support login and its switch-back.
    let login = app
        .support_login(None, &support.user_name, PASSWORD, &client)
        .await
        .unwrap();
    let support_session = login.session.unwrap().session_id;
    app.switch_back(&login.session_token).await.unwrap();
    // A proxy login as a customer, which the customer ends.
    let proxied = app
        .proxy_login(None, &support.user_name, PASSWORD, &customer.user_id)
        .await
        .unwrap();
    let proxy_session = proxied.session.unwrap().session_id;
    let customer_token = app.login_ok(&customer.user_name, PASSWORD).await.session_token;
    let revoke = pb::RevokeMySessionRequest {
        session_id: proxy_session.clone(),
    };
    app.sessions
        .clone()
        .revoke_my_session(bearer(revoke, &customer_token))
        .await
        .unwrap();

    for tenant in [&home, &client] {
        let started = app.audit_of(tenant, "impersonation.started").await;
        assert_eq!(started.len(), 2, "both logins, in tenant {tenant}");
        let (support_start, proxy_start) = (&started[0], &started[1]);
        assert_eq!(support_start.session_id, support_session);
        assert_eq!(support_start.actor_user_id, support.user_id);
        assert_eq!(support_start.subject_user_id, support.user_id);
        assert_eq!(support_start.details["kind"], "customer_support");
        assert_eq!(proxy_start.session_id, proxy_session);
        assert_eq!(proxy_start.actor_user_id, support.user_id);
        assert_eq!(proxy_start.subject_user_id, customer.user_id);
        assert_eq!(proxy_start.details["kind"], "proxy");

        let back = app.audit_of(tenant, "impersonation.switched_back").await;
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].session_id, support_session);
        assert_eq!(back[0].actor_user_id, support.user_id);

        let ended = app.audit_of(tenant, "impersonation.ended").await;
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].session_id, proxy_session);
        assert_eq!(ended[0].actor_user_id, customer.user_id, "the customer ended it");
        assert_eq!(ended[0].subject_user_id, customer.user_id);
        assert_eq!(ended[0].details["how"], "revoked");
    }
    // A refused attempt is recorded where the real user belongs.
    let other = app.create_tenant("Other").await.tenant_id;
    app.support_login(None, &support.user_name, PASSWORD, &other)
        .await
        .unwrap_err();
    let refused = app.audit_of(&home, "impersonation.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].actor_user_id, support.user_id);
    assert!(app.audit_of(&other, "impersonation.refused").await.is_empty());
    app.finish().await;
}

async fn the_user_acted_as_sees_the_impersonation_and_may_end_it(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let p = proxying(&app).await;
    let proxied = app
        .proxy_login(Some(&p.real_token), &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    let target_token = app.login_ok(&p.target.user_name, PASSWORD).await.session_token;
    let mine = app.my_sessions(&target_token).await.unwrap();
    let seen: Vec<_> = mine.iter().filter(|s| !s.impersonator_user_id.is_empty()).collect();
    assert_eq!(seen.len(), 1, "the target sees the proxy session among theirs");
    assert_eq!(seen[0].session_id, proxied.session.as_ref().unwrap().session_id);
    assert_eq!(seen[0].impersonator_user_id, p.real.user_id);
    assert_eq!(seen[0].impersonator_user_name, p.real.user_name);
    assert_eq!(seen[0].kind, pb::SessionKind::Proxy as i32);

    let revoke = pb::RevokeMySessionRequest {
        session_id: seen[0].session_id.clone(),
    };
    app.sessions
        .clone()
        .revoke_my_session(bearer(revoke, &target_token))
        .await
        .unwrap();
    assert!(!app.validate(&proxied.session_token).await.valid);
    assert!(
        app.validate(&p.real_token).await.valid,
        "the real user's own session is theirs"
    );
    assert!(app.validate(&target_token).await.valid);
    // The real user's original session is not the target's to end.
    let original = app.validate(&p.real_token).await.session_id;
    let revoke = pb::RevokeMySessionRequest { session_id: original };
    let status = app
        .sessions
        .clone()
        .revoke_my_session(bearer(revoke, &target_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    app.finish().await;
}

async fn disabling_the_real_user_ends_their_impersonations(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let p = proxying(&app).await;
    let proxied = app
        .proxy_login(None, &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    app.set_disabled(&app.admin_token, &p.real.user_id, true).await.unwrap();
    assert!(!app.validate(&proxied.session_token).await.valid);
    // And a disabled target ends the sessions acting as them.
    app.set_disabled(&app.admin_token, &p.real.user_id, false)
        .await
        .unwrap();
    let proxied = app
        .proxy_login(None, &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    app.set_disabled(&app.admin_token, &p.target.user_id, true)
        .await
        .unwrap();
    assert!(!app.validate(&proxied.session_token).await.valid);
    app.finish().await;
}

async fn a_client_tenant_switches_support_access_off_and_only_system_administrators_choose_served_tenants(
    env: TestEnv,
) {
    let app = TestApp::spawn(&env).await;
    let home = app.create_tenant("Support desk").await.tenant_id;
    let client = app.create_tenant("Client").await;
    assert_eq!(client.allow_customer_support, Some(true), "on by default");
    let client = client.tenant_id;
    app.set_served(&home, &[&client]).await;
    let support = app
        .create_user(&home, "support@example.com", PASSWORD, &[pb::Role::CustomerSupport])
        .await;
    let client_admin = app
        .create_user(&client, "boss@example.com", PASSWORD, &[pb::Role::TenantAdmin])
        .await;
    let boss = app.login_ok(&client_admin.user_name, PASSWORD).await.session_token;

    // The client's administrator switches support off, and on again.
    let off = app.allow_support(&boss, &client, false).await.unwrap();
    assert_eq!(off.allow_customer_support, Some(false));
    let refused = app.support_login(None, &support.user_name, PASSWORD, &client).await;
    assert_error(&refused.unwrap_err(), Code::PermissionDenied, "PERMISSION_DENIED");
    app.allow_support(&boss, &client, true).await.unwrap();
    app.support_login(None, &support.user_name, PASSWORD, &client)
        .await
        .unwrap();

    // A tenant administrator cannot choose the tenants their tenant serves.
    let home_admin = app
        .create_user(&home, "desk-boss@example.com", PASSWORD, &[pb::Role::TenantAdmin])
        .await;
    let desk_boss = app.login_ok(&home_admin.user_name, PASSWORD).await.session_token;
    let other = app.create_tenant("Other").await.tenant_id;
    let tenant = pb::Tenant {
        tenant_id: home.clone(),
        served_tenant_ids: vec![client.clone(), other],
        ..Default::default()
    };
    let status = app
        .update_tenant(&desk_boss, tenant, &["served_tenant_ids"])
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    app.finish().await;
}

async fn wrong_passwords_at_impersonating_logins_lock_the_account_as_at_login(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let p = proxying(&app).await;
    let tenant = pb::Tenant {
        tenant_id: p.real.tenant_id.clone(),
        lockout_failures: 2,
        ..Default::default()
    };
    app.update_tenant(&app.admin_token, tenant, &["lockout_failures"])
        .await
        .unwrap();
    let support_user = p.real.user_name.clone();
    let wrong = app
        .proxy_login(None, &p.real.user_name, "a wrong guess", &p.target.user_id)
        .await;
    assert_error(&wrong.unwrap_err(), Code::Unauthenticated, "INVALID_CREDENTIALS");
    let wrong = app
        .support_login(None, &support_user, "another wrong guess", &p.target.tenant_id)
        .await;
    assert_error(&wrong.unwrap_err(), Code::Unauthenticated, "INVALID_CREDENTIALS");
    // Locked: the right password is refused everywhere, alike.
    let locked = app.login(&p.real.user_name, PASSWORD).await.unwrap_err();
    assert_error(&locked, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let locked = app
        .proxy_login(None, &p.real.user_name, PASSWORD, &p.target.user_id)
        .await;
    assert_error(&locked.unwrap_err(), Code::Unauthenticated, "INVALID_CREDENTIALS");
    let user = app.get_user(&app.admin_token, &p.real.user_id).await.unwrap();
    assert_eq!(user.failed_login_count, 2);
    assert!(user.locked_until.is_some());
    app.finish().await;
}

async fn an_impersonation_ends_when_what_allowed_it_changes(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let home = app.create_tenant("Support desk").await.tenant_id;
    let client = app.create_tenant("Client").await.tenant_id;
    app.set_served(&home, &[&client]).await;
    let roles = [pb::Role::CustomerSupport, pb::Role::ProxyLogin];
    let support = app.create_user(&home, "support@example.com", PASSWORD, &roles).await;
    let customer = app.create_user(&client, "customer@example.com", PASSWORD, &[]).await;
    let customer_token = app.login_ok(&customer.user_name, PASSWORD).await.session_token;
    let support_token = app.login_ok(&support.user_name, PASSWORD).await.session_token;
    let proxy = || async {
        app.proxy_login(None, &support.user_name, PASSWORD, &customer.user_id)
            .await
            .unwrap()
            .session_token
    };
    let enter = || async {
        app.support_login(None, &support.user_name, PASSWORD, &client)
            .await
            .unwrap()
            .session_token
    };

    // The real user's roles change: the role that allowed it may be gone.
    let proxied = proxy().await;
    app.set_roles(&app.admin_token, &support.user_id, &[pb::Role::ProxyLogin])
        .await
        .unwrap();
    assert!(!app.validate(&proxied).await.valid);
    app.set_roles(&app.admin_token, &support.user_id, &roles).await.unwrap();
    // The target's roles change: the proxy would hold a role it lacks.
    let proxied = proxy().await;
    app.set_roles(&app.admin_token, &customer.user_id, &[pb::Role::TenantAdmin])
        .await
        .unwrap();
    assert!(!app.validate(&proxied).await.valid);
    app.set_roles(&app.admin_token, &customer.user_id, &[]).await.unwrap();

    // The client switches support off: every session of another tenant's user acting in it ends.
    let (entered, proxied) = (enter().await, proxy().await);
    app.allow_support(&app.admin_token, &client, false).await.unwrap();
    assert!(!app.validate(&entered).await.valid);
    assert!(!app.validate(&proxied).await.valid);
    assert!(
        app.validate(&customer_token).await.valid,
        "the client's own sessions go on"
    );
    app.allow_support(&app.admin_token, &client, true).await.unwrap();

    // The support tenant no longer serves the client.
    let (entered, proxied) = (enter().await, proxy().await);
    app.set_served(&home, &[]).await;
    assert!(!app.validate(&entered).await.valid);
    assert!(!app.validate(&proxied).await.valid);
    assert!(
        app.validate(&support_token).await.valid,
        "the support user's own session goes on"
    );
    assert!(app.validate(&customer_token).await.valid);
    app.finish().await;
}

async fn bad_input_names_every_bad_field(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let empty = app.proxy_login(None, "", "", "").await.unwrap_err();
    assert_error(&empty, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&empty), ["user_name", "password", "proxy_user_id"]);
    let malformed = app
        .support_login(None, "someone@example.com", PASSWORD, "not an id")
        .await
        .unwrap_err();
    assert_error(&malformed, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&malformed), ["client_tenant_id"]);
    app.finish().await;
}

/// An impersonation points at the session it was opened from; the retention sweep may reach that
/// session first (it ended first) and must still delete it, leaving the impersonation for later.
async fn the_sweep_deletes_an_original_session_before_its_impersonation(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let p = proxying(&app).await;
    let proxied = app
        .proxy_login(Some(&p.real_token), &p.real.user_name, PASSWORD, &p.target.user_id)
        .await
        .unwrap();
    app.clock.advance(Duration::minutes(5));
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &p.real_token))
        .await
        .expect("the original session logs out");

    // The original ended 5 minutes in; the impersonation lasts until its hour is up.
    app.clock.advance(Duration::days(30) + Duration::minutes(30));
    assert_eq!(app.identity.sweep_old_sessions().await, 1, "the original session only");
    app.clock.advance(Duration::hours(1));
    assert_eq!(app.identity.sweep_old_sessions().await, 1, "then the impersonation");
    assert!(!app.validate(&proxied.session_token).await.valid);
    app.finish().await;
}
