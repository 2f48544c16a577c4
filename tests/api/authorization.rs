//! The authorization matrix: every RPC, called by every kind of caller holding each role, on every
//! kind of target, must answer what the rules say. The rules as a caller sees them:
//!
//! - With a user access token — as the bearer, or through a session opened with one — a caller
//!   reads, and leaves the session they are in, but changes nothing (`ACCESS_TOKEN_NOT_ALLOWED`).
//! - A tenant administrator acts in their own tenant, a system administrator everywhere; another
//!   tenant's users and tenants are not found, a member without the role is refused.
//! - Nobody reads the credentials of, or changes, a user holding a role they lack (a system
//!   administrator holds every role).
//! - Through a proxy session (someone acting as the caller), a caller does what the caller may do,
//!   but mints no user access token, changes or sets no password, grants or removes no role, and
//!   impersonates nobody again (`IMPERSONATION_NOT_ALLOWED`); only such a session may switch back.
//! - Proxy and customer-support logins need their role (a system administrator holds every role);
//!   each cell's tenant serves the other tenant.
//!
//! Each cell gets fresh tenants and users, so no call sees another's changes.
//! [`every_rpc_has_a_row`] fails when an RPC of the contract has no row here.

// The deprecated service-account session calls are part of the contract and have their rows.
#![allow(deprecated)]

use std::collections::BTreeSet;

use futures_util::future::join_all;
use identityd::grpc::pb;
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::app::{TestApp, TestEnv, bearer};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        every_rpc_has_a_row,
        every_rpc_answers_every_caller_as_the_rules_say,
        a_session_whose_password_must_change_may_only_change_it
    ]
}

/// How the caller authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A session opened with a password.
    Password,
    /// A user access token as the bearer.
    TokenBearer,
    /// A session opened by logging in with a user access token.
    TokenSession,
    /// A proxy session in which a system administrator of the caller's tenant acts as the caller.
    Impersonated,
}

/// The role the caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rank {
    Plain,
    TenantAdmin,
    SystemAdmin,
}

/// Whom or what the call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The caller themself, or their own tenant.
    Caller,
    /// A user of the caller's tenant holding no role.
    Peer,
    /// A system administrator of the caller's tenant.
    Senior,
    /// A tenant administrator of another tenant, or that tenant.
    Stranger,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    via: Via,
    rank: Rank,
    target: Target,
}

type Outcome = Result<(), (Code, &'static str)>;
const OK: Outcome = Ok(());
const TOKEN: Outcome = Err((Code::PermissionDenied, "ACCESS_TOKEN_NOT_ALLOWED"));
const DENIED: Outcome = Err((Code::PermissionDenied, "PERMISSION_DENIED"));
const NOT_FOUND: Outcome = Err((Code::NotFound, "NOT_FOUND"));
const SSO_FAILED: Outcome = Err((Code::Unauthenticated, "SSO_FAILED"));
const OWN_ACCOUNT: Outcome = Err((Code::FailedPrecondition, "FAILED_PRECONDITION"));
const CHANGE_PASSWORD_FIRST: Outcome = Err((Code::FailedPrecondition, "PASSWORD_CHANGE_REQUIRED"));
const IMPERSONATED: Outcome = Err((Code::PermissionDenied, "IMPERSONATION_NOT_ALLOWED"));
const NOT_IMPERSONATING: Outcome = Err((Code::FailedPrecondition, "FAILED_PRECONDITION"));

/// One row per way of calling an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Login,
    StartSso,
    LoginSso,
    GetSamlMetadata,
    LogoutCurrent,
    LogoutSession,
    LoginAsCustomerSupport,
    ProxyLogin,
    SwitchBack,
    ChangePassword,
    ValidateSession,
    GetCurrentUser,
    CreateSession,
    ListSessions,
    UpdateSession,
    DeleteSession,
    ListMySessions,
    RevokeMySession,
    RevokeMyOtherSessions,
    GetJwks,
    RefreshSessionJwt,
    CreateUserAccessToken,
    GetUserAccessToken,
    ListUserAccessTokens,
    UpdateUserAccessToken,
    DeleteUserAccessToken,
    RotateUserAccessToken,
    ListUserAccessTokenSessions,
    CreateTenant,
    GetTenant,
    UpdateTenant,
    CreateUser,
    GetUser,
    ListUsers,
    UpdateUser,
    DisableUser,
    EnableUser,
    SetUserRoles,
    SetUserPassword,
    UnlockUser,
    CreateServiceAccount,
    ListServiceAccounts,
    ListUserSessions,
    RevokeUserSessions,
    ListAuditEvents,
    CreateIdentityProvider,
    GetIdentityProvider,
    ListIdentityProviders,
    UpdateIdentityProvider,
    DeleteIdentityProvider,
}

const ROWS: [Rpc; 50] = [
    Rpc::Login,
    Rpc::StartSso,
    Rpc::LoginSso,
    Rpc::GetSamlMetadata,
    Rpc::LogoutCurrent,
    Rpc::LogoutSession,
    Rpc::LoginAsCustomerSupport,
    Rpc::ProxyLogin,
    Rpc::SwitchBack,
    Rpc::ChangePassword,
    Rpc::ValidateSession,
    Rpc::GetCurrentUser,
    Rpc::CreateSession,
    Rpc::ListSessions,
    Rpc::UpdateSession,
    Rpc::DeleteSession,
    Rpc::ListMySessions,
    Rpc::RevokeMySession,
    Rpc::RevokeMyOtherSessions,
    Rpc::GetJwks,
    Rpc::RefreshSessionJwt,
    Rpc::CreateUserAccessToken,
    Rpc::GetUserAccessToken,
    Rpc::ListUserAccessTokens,
    Rpc::UpdateUserAccessToken,
    Rpc::DeleteUserAccessToken,
    Rpc::RotateUserAccessToken,
    Rpc::ListUserAccessTokenSessions,
    Rpc::CreateTenant,
    Rpc::GetTenant,
    Rpc::UpdateTenant,
    Rpc::CreateUser,
    Rpc::GetUser,
    Rpc::ListUsers,
    Rpc::UpdateUser,
    Rpc::DisableUser,
    Rpc::EnableUser,
    Rpc::SetUserRoles,
    Rpc::SetUserPassword,
    Rpc::UnlockUser,
    Rpc::CreateServiceAccount,
    Rpc::ListServiceAccounts,
    Rpc::ListUserSessions,
    Rpc::RevokeUserSessions,
    Rpc::ListAuditEvents,
    Rpc::CreateIdentityProvider,
    Rpc::GetIdentityProvider,
    Rpc::ListIdentityProviders,
    Rpc::UpdateIdentityProvider,
    Rpc::DeleteIdentityProvider,
];

/// What a row's calls can be about.
enum Targets {
    /// Only the caller's own things.
    Own,
    /// A user: the caller, a peer, a senior, a stranger.
    Users,
    /// A tenant: the caller's or another.
    Tenants,
}

impl Rpc {
    /// The fully qualified method, as reflection lists it.
    fn method(self) -> &'static str {
        use Rpc::*;
        match self {
            Login => "identity.v1.LoginService/Login",
            StartSso => "identity.v1.LoginService/StartSso",
            LoginSso => "identity.v1.LoginService/LoginSso",
            GetSamlMetadata => "identity.v1.LoginService/GetSamlMetadata",
            LogoutCurrent | LogoutSession => "identity.v1.LoginService/Logout",
            LoginAsCustomerSupport => "identity.v1.LoginService/LoginAsCustomerSupport",
            ProxyLogin => "identity.v1.LoginService/ProxyLogin",
            SwitchBack => "identity.v1.LoginService/SwitchBack",
            ChangePassword => "identity.v1.LoginService/ChangePassword",
            ValidateSession => "identity.v1.SessionService/ValidateSession",
            GetCurrentUser => "identity.v1.SessionService/GetCurrentUser",
            CreateSession => "identity.v1.SessionService/CreateSession",
            ListSessions => "identity.v1.SessionService/ListSessions",
            UpdateSession => "identity.v1.SessionService/UpdateSession",
            DeleteSession => "identity.v1.SessionService/DeleteSession",
            ListMySessions => "identity.v1.SessionService/ListMySessions",
            RevokeMySession => "identity.v1.SessionService/RevokeMySession",
            RevokeMyOtherSessions => "identity.v1.SessionService/RevokeMyOtherSessions",
            GetJwks => "identity.v1.SessionService/GetJwks",
            RefreshSessionJwt => "identity.v1.SessionService/RefreshSessionJwt",
            CreateUserAccessToken => "identity.v1.AccessTokenService/CreateUserAccessToken",
            GetUserAccessToken => "identity.v1.AccessTokenService/GetUserAccessToken",
            ListUserAccessTokens => "identity.v1.AccessTokenService/ListUserAccessTokens",
            UpdateUserAccessToken => "identity.v1.AccessTokenService/UpdateUserAccessToken",
            DeleteUserAccessToken => "identity.v1.AccessTokenService/DeleteUserAccessToken",
            RotateUserAccessToken => "identity.v1.AccessTokenService/RotateUserAccessToken",
            ListUserAccessTokenSessions => "identity.v1.AccessTokenService/ListUserAccessTokenSessions",
            CreateTenant => "identity.v1.AdminService/CreateTenant",
            GetTenant => "identity.v1.AdminService/GetTenant",
            UpdateTenant => "identity.v1.AdminService/UpdateTenant",
            CreateUser => "identity.v1.AdminService/CreateUser",
            GetUser => "identity.v1.AdminService/GetUser",
            ListUsers => "identity.v1.AdminService/ListUsers",
            UpdateUser => "identity.v1.AdminService/UpdateUser",
            DisableUser => "identity.v1.AdminService/DisableUser",
            EnableUser => "identity.v1.AdminService/EnableUser",
            SetUserRoles => "identity.v1.AdminService/SetUserRoles",
            SetUserPassword => "identity.v1.AdminService/SetUserPassword",
            UnlockUser => "identity.v1.AdminService/UnlockUser",
            CreateServiceAccount => "identity.v1.AdminService/CreateServiceAccount",
            ListServiceAccounts => "identity.v1.AdminService/ListServiceAccounts",
            ListUserSessions => "identity.v1.AdminService/ListUserSessions",
            RevokeUserSessions => "identity.v1.AdminService/RevokeUserSessions",
            ListAuditEvents => "identity.v1.AdminService/ListAuditEvents",
            CreateIdentityProvider => "identity.v1.AdminService/CreateIdentityProvider",
            GetIdentityProvider => "identity.v1.AdminService/GetIdentityProvider",
            ListIdentityProviders => "identity.v1.AdminService/ListIdentityProviders",
            UpdateIdentityProvider => "identity.v1.AdminService/UpdateIdentityProvider",
            DeleteIdentityProvider => "identity.v1.AdminService/DeleteIdentityProvider",
        }
    }

    fn targets(self) -> Targets {
        use Rpc::*;
        match self {
            LogoutSession
            | RevokeMySession
            | GetUserAccessToken
            | ListUserAccessTokens
            | ListUserAccessTokenSessions
            | GetUser
            | UpdateUser
            | DisableUser
            | EnableUser
            | SetUserRoles
            | SetUserPassword
            | UnlockUser
            | ListUserSessions
            | RevokeUserSessions
            | ProxyLogin => Targets::Users,
            // A service-account session of the caller's tenant, or of another.
            UpdateSession | DeleteSession => Targets::Tenants,
            GetTenant
            | UpdateTenant
            | CreateUser
            | ListUsers
            | CreateServiceAccount
            | ListServiceAccounts
            | ListAuditEvents
            | LoginAsCustomerSupport
            | CreateIdentityProvider
            | GetIdentityProvider
            | UpdateIdentityProvider
            | DeleteIdentityProvider => Targets::Tenants,
            _ => Targets::Own,
        }
    }

    /// The rules, cell by cell.
    fn expect(self, c: Cell) -> Outcome {
        use Rpc::*;
        let token = matches!(c.via, Via::TokenBearer | Via::TokenSession);
        let impersonated = c.via == Via::Impersonated;
        // A change with a token answers ACCESS_TOKEN_NOT_ALLOWED before anything else.
        let change = |then: Outcome| if token { TOKEN } else { then };
        // Then, through a proxy session, what only the real user may do.
        let real_user_only = |then: Outcome| change(if impersonated { IMPERSONATED } else { then });
        let administers = match (c.rank, c.target) {
            (Rank::SystemAdmin, _) => OK,
            (_, Target::Stranger) => NOT_FOUND,
            (Rank::TenantAdmin, _) => OK,
            (Rank::Plain, _) => DENIED,
        };
        let outranks = match (c.rank, c.target) {
            (Rank::SystemAdmin, _) | (_, Target::Caller | Target::Peer) => OK,
            _ => DENIED,
        };
        let acts_on = administers.and(outranks);
        let own = c.target == Target::Caller;
        // Only the system administrator holds the proxy and support roles; the caller's tenant
        // serves the stranger's.
        let impersonates = |own_target: Outcome| {
            real_user_only(match (c.rank, c.target) {
                (Rank::SystemAdmin, Target::Caller) => own_target,
                (Rank::SystemAdmin, _) => OK,
                _ => DENIED,
            })
        };
        match self {
            Login | ValidateSession | GetCurrentUser | ListMySessions | GetJwks => OK,
            // A JWT of the session the call comes through; a token as the bearer has none.
            RefreshSessionJwt if c.via == Via::TokenBearer => Err((Code::FailedPrecondition, "FAILED_PRECONDITION")),
            RefreshSessionJwt => OK,
            // Sign-in calls: no caller needed, and none helps; the tenant has no provider and the
            // state is unknown, whoever calls.
            StartSso | LoginSso => SSO_FAILED,
            // Public, as metadata is; the tenant has no SAML provider, whoever calls.
            GetSamlMetadata => NOT_FOUND,
            // Service-account sessions, in the caller's tenant or (by session id) another's. A new
            // one is a credential, which a proxy session may not mint.
            ListSessions => administers,
            CreateSession => real_user_only(administers),
            UpdateSession | DeleteSession => change(administers),
            // As themself; their own tenant does not serve itself.
            ProxyLogin => impersonates(OWN_ACCOUNT),
            LoginAsCustomerSupport => impersonates(DENIED),
            SwitchBack => {
                if impersonated {
                    OK
                } else {
                    NOT_IMPERSONATING
                }
            }
            LogoutCurrent if c.via == Via::TokenBearer => Err((Code::FailedPrecondition, "FAILED_PRECONDITION")),
            LogoutCurrent => OK,
            // Another of the caller's sessions, or someone else's.
            LogoutSession | RevokeMySession => change(if own { OK } else { NOT_FOUND }),
            // Proven with the password; the bearer only names the session to keep.
            ChangePassword => real_user_only(OK),
            CreateUserAccessToken | RotateUserAccessToken => real_user_only(OK),
            RevokeMyOtherSessions | UpdateUserAccessToken | DeleteUserAccessToken => change(OK),
            GetUserAccessToken | ListUserAccessTokens | ListUserAccessTokenSessions => {
                if own {
                    OK
                } else {
                    acts_on
                }
            }
            CreateTenant => change(if c.rank == Rank::SystemAdmin { OK } else { DENIED }),
            GetTenant | ListUsers | ListServiceAccounts | ListAuditEvents => administers,
            UpdateTenant | CreateUser | CreateServiceAccount => change(administers),
            GetUser => {
                if own {
                    OK
                } else {
                    administers
                }
            }
            UpdateUser => change(if own { OK } else { acts_on }),
            DisableUser => change(acts_on.and(if own { OWN_ACCOUNT } else { OK })),
            EnableUser | UnlockUser => change(acts_on),
            // Who may change the user is decided first, then that the roles are the real user's to give.
            SetUserRoles => change(acts_on.and(if impersonated { IMPERSONATED } else { OK })),
            SetUserPassword => real_user_only(acts_on),
            ListUserSessions => {
                if own {
                    OK
                } else {
                    acts_on
                }
            }
            RevokeUserSessions => change(acts_on),
            // A provider that links accounts can take them over: the real administrator only.
            CreateIdentityProvider | UpdateIdentityProvider | DeleteIdentityProvider => real_user_only(administers),
            GetIdentityProvider => administers,
            ListIdentityProviders => {
                if c.rank == Rank::SystemAdmin {
                    OK
                } else {
                    DENIED
                }
            }
        }
    }

    /// Whether the call sends the caller's credential as authorization metadata; the others carry
    /// their credentials (or none) in the request.
    fn sends_bearer(self) -> bool {
        use Rpc::*;
        match self {
            Login | StartSso | LoginSso | GetSamlMetadata | ValidateSession | GetJwks => false,
            // The bearer is optional: the session to keep for switching back.
            LoginAsCustomerSupport
            | ProxyLogin
            | LogoutCurrent
            | LogoutSession
            | SwitchBack
            | ChangePassword
            | GetCurrentUser
            | CreateSession
            | ListSessions
            | UpdateSession
            | DeleteSession
            | ListMySessions
            | RevokeMySession
            | RevokeMyOtherSessions
            | RefreshSessionJwt
            | CreateUserAccessToken
            | GetUserAccessToken
            | ListUserAccessTokens
            | UpdateUserAccessToken
            | DeleteUserAccessToken
            | RotateUserAccessToken
            | ListUserAccessTokenSessions
            | CreateTenant
            | GetTenant
            | UpdateTenant
            | CreateUser
            | GetUser
            | ListUsers
            | UpdateUser
            | DisableUser
            | EnableUser
            | SetUserRoles
            | SetUserPassword
            | UnlockUser
            | CreateServiceAccount
            | ListServiceAccounts
            | ListUserSessions
            | RevokeUserSessions
            | ListAuditEvents
            | CreateIdentityProvider
            | GetIdentityProvider
            | ListIdentityProviders
            | UpdateIdentityProvider
            | DeleteIdentityProvider => true,
        }
    }

    /// The rules for a caller whose password session must change its password: the calls that
    /// carry the session answer PASSWORD_CHANGE_REQUIRED, but for ChangePassword, Logout and
    /// GetCurrentUser.
    fn expect_when_password_must_change(self, c: Cell) -> Outcome {
        use Rpc::*;
        let rules = self.expect(c);
        let allowed = matches!(self, ChangePassword | LogoutCurrent | LogoutSession | GetCurrentUser);
        if !self.sends_bearer() || allowed {
            rules
        } else {
            CHANGE_PASSWORD_FIRST
        }
    }
}

const PASSWORD: &str = "a password for the matrix";
/// The password an administrator sets on the caller of the forced-change table.
const RESET_PASSWORD: &str = "a temporary password for the matrix";

/// A user with an open session and a user access token named "t".
struct Party {
    user: pb::User,
    session_id: String,
    /// The token of that session.
    session_token: String,
}

/// Fresh tenants and users for one cell.
struct World<'a> {
    app: &'a TestApp,
    /// The credential the caller sends.
    bearer: String,
    caller: pb::User,
    /// The caller's password.
    password: String,
    /// Another open session of the caller (opened with the password).
    caller_other_session_id: String,
    tenant_id: String,
    other_tenant_id: String,
    peer: Party,
    senior: Party,
    stranger: Party,
    prefix: String,
}

impl World<'_> {
    fn user(&self, target: Target) -> &pb::User {
        match target {
            Target::Caller => &self.caller,
            Target::Peer => &self.peer.user,
            Target::Senior => &self.senior.user,
            Target::Stranger => &self.stranger.user,
        }
    }

    fn session_id(&self, target: Target) -> String {
        match target {
            Target::Caller => self.caller_other_session_id.clone(),
            Target::Peer => self.peer.session_id.clone(),
            Target::Senior => self.senior.session_id.clone(),
            Target::Stranger => self.stranger.session_id.clone(),
        }
    }

    fn tenant_id(&self, target: Target) -> String {
        match target {
            Target::Stranger => self.other_tenant_id.clone(),
            _ => self.tenant_id.clone(),
        }
    }

    /// Creates the service account "robot" in the target's tenant, as the bootstrap administrator.
    async fn service_account(&self, target: Target) {
        let request = pb::CreateServiceAccountRequest {
            tenant_id: self.tenant_id(target),
            name: "robot".into(),
            ..Default::default()
        };
        self.app
            .admin
            .clone()
            .create_service_account(bearer(request, &self.app.admin_token))
            .await
            .expect("create a service account");
    }

    /// Opens a session of a service account of the target's tenant, as an administrator of that
    /// tenant; answers its id.
    async fn service_account_session(&self, target: Target) -> String {
        self.service_account(target).await;
        let admin = match target {
            Target::Stranger => &self.stranger,
            _ => &self.senior,
        };
        let request = pb::CreateSessionRequest {
            service_account_name: "robot".into(),
            expiration_date: self.next_week(),
            time_zone: String::new(),
        };
        self.app
            .sessions
            .clone()
            .create_session(bearer(request, &admin.session_token))
            .await
            .expect("open a service-account session")
            .into_inner()
            .session
            .unwrap()
            .session_id
    }

    /// An expiration_date a week from the server's now.
    fn next_week(&self) -> String {
        (self.app.clock_now() + chrono::Duration::days(7)).to_rfc3339()
    }

    /// Sets up an identity provider in the target's tenant, as the bootstrap administrator.
    async fn identity_provider(&self, target: Target) {
        let request = pb::CreateIdentityProviderRequest {
            identity_provider: Some(identity_provider(self.tenant_id(target))),
        };
        self.app
            .admin
            .clone()
            .create_identity_provider(bearer(request, &self.app.admin_token))
            .await
            .expect("set up an identity provider");
    }

    /// The user name to send for a target (empty: the caller) and the name of their token.
    fn token_of(&self, target: Target) -> (String, String) {
        match target {
            Target::Caller => (String::new(), "mine".into()),
            other => (self.user(other).user_name.clone(), "t".into()),
        }
    }
}

async fn create_token(app: &TestApp, session_token: &str, name: &str) -> String {
    let request = pb::CreateUserAccessTokenRequest {
        user_access_token_name: name.into(),
        ..Default::default()
    };
    app.tokens()
        .create_user_access_token(bearer(request, session_token))
        .await
        .expect("create a token")
        .into_inner()
        .token
}

async fn party(app: &TestApp, tenant_id: &str, name: String, roles: &[pb::Role]) -> Party {
    let user = app.create_user(tenant_id, &name, PASSWORD, roles).await;
    let login = app.login_ok(&name, PASSWORD).await;
    create_token(app, &login.session_token, "t").await;
    Party {
        user,
        session_id: login.session.unwrap().session_id,
        session_token: login.session_token,
    }
}

async fn world(app: &TestApp, via: Via, rank: Rank) -> World<'_> {
    let prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let other_tenant_id = app.create_tenant(&format!("O {prefix}")).await.tenant_id;
    // The caller's tenant serves the other one: the target of proxy and support logins.
    let request = pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: format!("T {prefix}"),
            served_tenant_ids: vec![other_tenant_id.clone()],
            ..Default::default()
        }),
    };
    let created = app.admin.clone().create_tenant(bearer(request, &app.admin_token)).await;
    let tenant_id = created
        .expect("create the caller's tenant")
        .into_inner()
        .tenant
        .unwrap()
        .tenant_id;
    let roles: &[pb::Role] = match rank {
        Rank::Plain => &[],
        Rank::TenantAdmin => &[pb::Role::TenantAdmin],
        Rank::SystemAdmin => &[pb::Role::SystemAdmin],
    };
    let caller_name = format!("caller-{prefix}@example.com");
    let caller = app.create_user(&tenant_id, &caller_name, PASSWORD, roles).await;
    let session = app.login_ok(&caller_name, PASSWORD).await.session_token;
    let secret = create_token(app, &session, "mine").await;
    let other = app.login_ok(&caller_name, PASSWORD).await;
    let peer = party(app, &tenant_id, format!("peer-{prefix}@example.com"), &[]).await;
    let senior_roles = [pb::Role::SystemAdmin, pb::Role::TenantAdmin];
    let senior = party(app, &tenant_id, format!("senior-{prefix}@example.com"), &senior_roles).await;
    let stranger_name = format!("stranger-{prefix}@example.com");
    let stranger = party(app, &other_tenant_id, stranger_name, &[pb::Role::TenantAdmin]).await;
    let bearer = match via {
        Via::Password => session,
        Via::Impersonated => {
            let request = pb::ProxyLoginRequest {
                user_name: senior.user.user_name.clone(),
                password: PASSWORD.into(),
                proxy_user_id: caller.user_id.clone(),
            };
            let login = app.login.clone().proxy_login(request).await;
            login.expect("the senior acts as the caller").into_inner().session_token
        }
        Via::TokenBearer => secret,
        Via::TokenSession => {
            let request = pb::LoginRequest {
                token: secret,
                ..Default::default()
            };
            app.login
                .clone()
                .login(request)
                .await
                .unwrap()
                .into_inner()
                .session_token
        }
    };
    World {
        app,
        bearer,
        caller,
        password: PASSWORD.into(),
        caller_other_session_id: other.session.unwrap().session_id,
        tenant_id,
        other_tenant_id,
        peer,
        senior,
        stranger,
        prefix,
    }
}

/// Makes the call of `rpc` about `target` as the world's caller.
async fn call(rpc: Rpc, w: &World<'_>, target: Target) -> Result<(), Status> {
    use Rpc::*;
    let app = w.app;
    let b = w.bearer.as_str();
    let user = w.user(target);
    let (owner, token_name) = w.token_of(target);
    match rpc {
        Login => app.login(&w.caller.user_name, &w.password).await.map(ok),
        StartSso => app
            .login
            .clone()
            .start_sso(pb::StartSsoRequest {
                tenant_id: app.admin_tenant_id.clone(),
                redirect_uri: "https://app.example.com/sso/callback".into(),
            })
            .await
            .map(ok),
        LoginSso => app
            .login
            .clone()
            .login_sso(pb::LoginSsoRequest {
                code: "a code".into(),
                state: "a state nobody started".into(),
                ..Default::default()
            })
            .await
            .map(ok),
        GetSamlMetadata => app
            .login
            .clone()
            .get_saml_metadata(pb::GetSamlMetadataRequest {
                tenant_id: app.admin_tenant_id.clone(),
            })
            .await
            .map(ok),
        LogoutCurrent => app
            .login
            .clone()
            .logout(bearer(pb::LogoutRequest::default(), b))
            .await
            .map(ok),
        LogoutSession => {
            let request = pb::LogoutRequest {
                session_id: w.session_id(target),
                ..Default::default()
            };
            app.login.clone().logout(bearer(request, b)).await.map(ok)
        }
        LoginAsCustomerSupport => {
            let request = pb::LoginAsCustomerSupportRequest {
                user_name: w.caller.user_name.clone(),
                password: w.password.clone(),
                client_tenant_id: w.tenant_id(target),
            };
            let request = bearer(request, b);
            app.login.clone().login_as_customer_support(request).await.map(ok)
        }
        ProxyLogin => {
            let request = pb::ProxyLoginRequest {
                user_name: w.caller.user_name.clone(),
                password: w.password.clone(),
                proxy_user_id: user.user_id.clone(),
            };
            app.login.clone().proxy_login(bearer(request, b)).await.map(ok)
        }
        SwitchBack => app
            .login
            .clone()
            .switch_back(bearer(pb::SwitchBackRequest {}, b))
            .await
            .map(ok),
        ChangePassword => {
            let request = pb::ChangePasswordRequest {
                user_name: w.caller.user_name.clone(),
                current_password: w.password.clone(),
                new_password: "a new password for the matrix".into(),
            };
            app.login.clone().change_password(bearer(request, b)).await.map(ok)
        }
        ValidateSession => {
            let request = pb::ValidateSessionRequest {
                session_token: b.into(),
            };
            app.sessions.clone().validate_session(request).await.map(ok)
        }
        GetCurrentUser => {
            let request = bearer(pb::GetCurrentUserRequest {}, b);
            app.sessions.clone().get_current_user(request).await.map(ok)
        }
        GetJwks => app.sessions.clone().get_jwks(pb::GetJwksRequest {}).await.map(ok),
        RefreshSessionJwt => {
            let request = bearer(pb::RefreshSessionJwtRequest {}, b);
            app.sessions.clone().refresh_session_jwt(request).await.map(ok)
        }
        CreateSession => {
            w.service_account(target).await;
            let request = pb::CreateSessionRequest {
                service_account_name: "robot".into(),
                expiration_date: w.next_week(),
                time_zone: String::new(),
            };
            app.sessions.clone().create_session(bearer(request, b)).await.map(ok)
        }
        ListSessions => {
            w.service_account(target).await;
            let request = pb::ListSessionsRequest {
                service_account_name: "robot".into(),
                ..Default::default()
            };
            app.sessions.clone().list_sessions(bearer(request, b)).await.map(ok)
        }
        UpdateSession => {
            let request = pb::UpdateSessionRequest {
                session_id: w.service_account_session(target).await,
                expiration_date: w.next_week(),
                time_zone: "Europe/Berlin".into(),
            };
            app.sessions.clone().update_session(bearer(request, b)).await.map(ok)
        }
        DeleteSession => {
            let request = pb::DeleteSessionRequest {
                session_id: w.service_account_session(target).await,
            };
            app.sessions.clone().delete_session(bearer(request, b)).await.map(ok)
        }
        ListMySessions => {
            let request = bearer(pb::ListMySessionsRequest::default(), b);
            app.sessions.clone().list_my_sessions(request).await.map(ok)
        }
        RevokeMySession => {
            let request = pb::RevokeMySessionRequest {
                session_id: w.session_id(target),
            };
            app.sessions.clone().revoke_my_session(bearer(request, b)).await.map(ok)
        }
        RevokeMyOtherSessions => {
            let request = bearer(pb::RevokeMyOtherSessionsRequest {}, b);
            app.sessions.clone().revoke_my_other_sessions(request).await.map(ok)
        }
        CreateUserAccessToken => {
            let request = pb::CreateUserAccessTokenRequest {
                user_access_token_name: "new".into(),
                ..Default::default()
            };
            app.tokens().create_user_access_token(bearer(request, b)).await.map(ok)
        }
        GetUserAccessToken => {
            let request = pb::GetUserAccessTokenRequest {
                user_access_token_name: token_name,
                user_name: owner,
            };
            app.tokens().get_user_access_token(bearer(request, b)).await.map(ok)
        }
        ListUserAccessTokens => {
            let request = pb::ListUserAccessTokensRequest {
                user_name: owner,
                ..Default::default()
            };
            app.tokens().list_user_access_tokens(bearer(request, b)).await.map(ok)
        }
        UpdateUserAccessToken => {
            let request = pb::UpdateUserAccessTokenRequest {
                user_access_token_name: "mine".into(),
                description: Some("changed".into()),
                ..Default::default()
            };
            app.tokens().update_user_access_token(bearer(request, b)).await.map(ok)
        }
        DeleteUserAccessToken => {
            let request = pb::DeleteUserAccessTokenRequest {
                user_access_token_name: "mine".into(),
            };
            app.tokens().delete_user_access_token(bearer(request, b)).await.map(ok)
        }
        RotateUserAccessToken => {
            let request = pb::RotateUserAccessTokenRequest {
                user_access_token_name: "mine".into(),
            };
            app.tokens().rotate_user_access_token(bearer(request, b)).await.map(ok)
        }
        ListUserAccessTokenSessions => {
            let request = pb::ListUserAccessTokenSessionsRequest {
                user_access_token_name: token_name,
                user_name: owner,
                ..Default::default()
            };
            app.tokens()
                .list_user_access_token_sessions(bearer(request, b))
                .await
                .map(ok)
        }
        CreateTenant => {
            let request = pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: format!("N {}", w.prefix),
                    ..Default::default()
                }),
            };
            app.admin.clone().create_tenant(bearer(request, b)).await.map(ok)
        }
        GetTenant => {
            let request = pb::GetTenantRequest {
                tenant_id: w.tenant_id(target),
            };
            app.admin.clone().get_tenant(bearer(request, b)).await.map(ok)
        }
        UpdateTenant => {
            let request = pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    tenant_id: w.tenant_id(target),
                    password_expiry: pb::PasswordExpiry::Days30 as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["password_expiry".into()],
                }),
            };
            app.admin.clone().update_tenant(bearer(request, b)).await.map(ok)
        }
        CreateUser => {
            let request = pb::CreateUserRequest {
                user: Some(pb::User {
                    tenant_id: w.tenant_id(target),
                    user_name: format!("new-{}@example.com", w.prefix),
                    ..Default::default()
                }),
                password: PASSWORD.into(),
            };
            app.admin.clone().create_user(bearer(request, b)).await.map(ok)
        }
        GetUser => {
            let request = pb::GetUserRequest {
                user_id: user.user_id.clone(),
            };
            app.admin.clone().get_user(bearer(request, b)).await.map(ok)
        }
        ListUsers => {
            let request = pb::ListUsersRequest {
                tenant_id: w.tenant_id(target),
                ..Default::default()
            };
            app.admin.clone().list_users(bearer(request, b)).await.map(ok)
        }
        UpdateUser => {
            let request = pb::UpdateUserRequest {
                user: Some(pb::User {
                    user_id: user.user_id.clone(),
                    first_name: "Changed".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["first_name".into()],
                }),
            };
            app.admin.clone().update_user(bearer(request, b)).await.map(ok)
        }
        DisableUser => {
            let request = pb::DisableUserRequest {
                user_id: user.user_id.clone(),
            };
            app.admin.clone().disable_user(bearer(request, b)).await.map(ok)
        }
        EnableUser => {
            let request = pb::EnableUserRequest {
                user_id: user.user_id.clone(),
            };
            app.admin.clone().enable_user(bearer(request, b)).await.map(ok)
        }
        SetUserRoles => {
            // The roles the user already holds: what is checked is who may change them at all.
            let request = pb::SetUserRolesRequest {
                user_id: user.user_id.clone(),
                roles: user.roles.clone(),
            };
            app.admin.clone().set_user_roles(bearer(request, b)).await.map(ok)
        }
        SetUserPassword => {
            let request = pb::SetUserPasswordRequest {
                user_id: user.user_id.clone(),
                password: "a password set for the matrix".into(),
                skip_force_change_password: false,
            };
            app.admin.clone().set_user_password(bearer(request, b)).await.map(ok)
        }
        UnlockUser => {
            let request = pb::UnlockUserRequest {
                user_id: user.user_id.clone(),
            };
            app.admin.clone().unlock_user(bearer(request, b)).await.map(ok)
        }
        CreateServiceAccount => {
            let request = pb::CreateServiceAccountRequest {
                tenant_id: w.tenant_id(target),
                name: "robot".into(),
                ..Default::default()
            };
            app.admin
                .clone()
                .create_service_account(bearer(request, b))
                .await
                .map(ok)
        }
        ListServiceAccounts => {
            let request = pb::ListServiceAccountsRequest {
                tenant_id: w.tenant_id(target),
                ..Default::default()
            };
            app.admin
                .clone()
                .list_service_accounts(bearer(request, b))
                .await
                .map(ok)
        }
        ListUserSessions => {
            let request = pb::ListUserSessionsRequest {
                user_id: user.user_id.clone(),
                ..Default::default()
            };
            app.admin.clone().list_user_sessions(bearer(request, b)).await.map(ok)
        }
        RevokeUserSessions => {
            let request = pb::RevokeUserSessionsRequest {
                user_id: user.user_id.clone(),
                session_id: String::new(),
            };
            app.admin.clone().revoke_user_sessions(bearer(request, b)).await.map(ok)
        }
        ListAuditEvents => {
            let request = pb::ListAuditEventsRequest {
                tenant_id: w.tenant_id(target),
                ..Default::default()
            };
            app.admin.clone().list_audit_events(bearer(request, b)).await.map(ok)
        }
        CreateIdentityProvider => {
            let request = pb::CreateIdentityProviderRequest {
                identity_provider: Some(identity_provider(w.tenant_id(target))),
            };
            app.admin
                .clone()
                .create_identity_provider(bearer(request, b))
                .await
                .map(ok)
        }
        GetIdentityProvider => {
            w.identity_provider(target).await;
            let request = pb::GetIdentityProviderRequest {
                tenant_id: w.tenant_id(target),
            };
            app.admin
                .clone()
                .get_identity_provider(bearer(request, b))
                .await
                .map(ok)
        }
        ListIdentityProviders => {
            let request = pb::ListIdentityProvidersRequest::default();
            app.admin
                .clone()
                .list_identity_providers(bearer(request, b))
                .await
                .map(ok)
        }
        UpdateIdentityProvider => {
            w.identity_provider(target).await;
            let request = pb::UpdateIdentityProviderRequest {
                identity_provider: Some(pb::IdentityProvider {
                    client_id: "another-client".into(),
                    ..identity_provider(w.tenant_id(target))
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["client_id".into()],
                }),
            };
            app.admin
                .clone()
                .update_identity_provider(bearer(request, b))
                .await
                .map(ok)
        }
        DeleteIdentityProvider => {
            w.identity_provider(target).await;
            let request = pb::DeleteIdentityProviderRequest {
                tenant_id: w.tenant_id(target),
            };
            app.admin
                .clone()
                .delete_identity_provider(bearer(request, b))
                .await
                .map(ok)
        }
    }
}

/// A provider the matrix sets up in a tenant.
fn identity_provider(tenant_id: String) -> pb::IdentityProvider {
    pb::IdentityProvider {
        tenant_id,
        issuer_url: "https://idp.example.com".into(),
        client_id: "identityd".into(),
        allowed_redirect_uris: vec!["https://app.example.com/sso".into()],
        ..Default::default()
    }
}

/// Drops a call's answer: the matrix looks only at whether it succeeded.
fn ok<T>(_: T) {}

/// The methods of every identity service in the contract the server serves.
fn contract_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(identityd::grpc::FILE_DESCRIPTOR_SET).expect("descriptors");
    set.file
        .iter()
        .filter(|f| f.package() == "identity.v1")
        .flat_map(|f| {
            f.service.iter().flat_map(|s| {
                s.method
                    .iter()
                    .map(move |m| format!("identity.v1.{}/{}", s.name(), m.name()))
            })
        })
        .collect()
}

async fn every_rpc_has_a_row(_: TestEnv) {
    let rows: BTreeSet<String> = ROWS.iter().map(|r| r.method().to_owned()).collect();
    let contract = contract_methods();
    let missing: Vec<_> = contract.difference(&rows).collect();
    let unknown: Vec<_> = rows.difference(&contract).collect();
    assert!(
        missing.is_empty(),
        "RPCs without a row in the authorization matrix: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "rows for RPCs the contract does not have: {unknown:?}"
    );
}

fn outcome(result: &Result<(), Status>) -> Result<(), (Code, String)> {
    match result {
        Ok(()) => Ok(()),
        Err(status) => {
            let reason = status.get_details_error_info().map(|i| i.reason).unwrap_or_default();
            Err((status.code(), reason))
        }
    }
}

async fn every_rpc_answers_every_caller_as_the_rules_say(env: TestEnv) {
    // Cheap hashing: the matrix creates thousands of users and logs them in.
    let app = TestApp::spawn_with(&env, |c| {
        c.argon2_memory_kib = 64;
        c.argon2_iterations = 1;
    })
    .await;
    assert_every_rpc_answers_as_the_rules_say(&app, Callers::Every).await;
    app.finish().await;
}

/// Which callers [`assert_every_rpc_answers_as_the_rules_say`] calls as.
pub(crate) enum Callers {
    /// Every way of authenticating, at every rank.
    Every,
    /// Password sessions at every rank: every RPC's allowed and refused paths, in a quarter of
    /// the calls.
    PasswordSessions,
}

/// Calls every RPC on `app` as `callers` on every kind of target, and checks each answer
/// against the rules.
pub(crate) async fn assert_every_rpc_answers_as_the_rules_say(app: &TestApp, callers: Callers) {
    let vias: &[Via] = match callers {
        Callers::Every => &[Via::Password, Via::TokenBearer, Via::TokenSession, Via::Impersonated],
        Callers::PasswordSessions => &[Via::Password],
    };
    let mut cells = Vec::new();
    for rpc in ROWS {
        let targets: &[Target] = match rpc.targets() {
            Targets::Own => &[Target::Caller],
            Targets::Users => &[Target::Caller, Target::Peer, Target::Senior, Target::Stranger],
            Targets::Tenants => &[Target::Caller, Target::Stranger],
        };
        for &via in vias {
            for rank in [Rank::Plain, Rank::TenantAdmin, Rank::SystemAdmin] {
                for &target in targets {
                    cells.push((rpc, Cell { via, rank, target }));
                }
            }
        }
    }
    let total = cells.len();
    let mut wrong = Vec::new();
    for chunk in cells.chunks(8) {
        let answers = join_all(chunk.iter().map(|&(rpc, cell)| async move {
            let w = world(app, cell.via, cell.rank).await;
            (rpc, cell, outcome(&call(rpc, &w, cell.target).await))
        }))
        .await;
        for (rpc, cell, got) in answers {
            let want = rpc.expect(cell).map_err(|(code, reason)| (code, reason.to_owned()));
            if got != want {
                wrong.push(format!("{rpc:?} {cell:?}: want {want:?}, got {got:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} cells answer otherwise than the rules say:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A world whose caller signs in with a password an administrator set, which they must change:
/// the bearer and the caller's other session are both opened with it.
async fn world_that_must_change_password(app: &TestApp, rank: Rank) -> World<'_> {
    let mut w = world(app, Via::Password, rank).await;
    app.set_password(&app.admin_token, &w.caller.user_id, RESET_PASSWORD, true)
        .await
        .expect("reset the caller's password");
    let login = app.login_ok(&w.caller.user_name, RESET_PASSWORD).await;
    assert!(login.is_force_change_password);
    w.bearer = login.session_token;
    let other = app.login_ok(&w.caller.user_name, RESET_PASSWORD).await;
    w.caller_other_session_id = other.session.unwrap().session_id;
    w.password = RESET_PASSWORD.into();
    w
}

/// Every RPC over the same rows as the matrix, called through a password session whose password
/// must change: only ChangePassword, Logout and GetCurrentUser get through, so that a new RPC
/// cannot slip past the rule.
async fn a_session_whose_password_must_change_may_only_change_it(env: TestEnv) {
    let app = TestApp::spawn_with(&env, crate::support::calls::cheap_hashing).await;
    let mut cells = Vec::new();
    for rpc in ROWS {
        let targets: &[Target] = match rpc.targets() {
            Targets::Own => &[Target::Caller],
            Targets::Users => &[Target::Caller, Target::Peer, Target::Stranger],
            Targets::Tenants => &[Target::Caller, Target::Stranger],
        };
        for rank in [Rank::Plain, Rank::SystemAdmin] {
            for &target in targets {
                let via = Via::Password;
                cells.push((rpc, Cell { via, rank, target }));
            }
        }
    }
    let total = cells.len();
    let mut wrong = Vec::new();
    for chunk in cells.chunks(8) {
        let answers = join_all(chunk.iter().map(|&(rpc, cell)| {
            let app = &app;
            async move {
                let w = world_that_must_change_password(app, cell.rank).await;
                (rpc, cell, outcome(&call(rpc, &w, cell.target).await))
            }
        }))
        .await;
        for (rpc, cell, got) in answers {
            let want = rpc
                .expect_when_password_must_change(cell)
                .map_err(|(code, reason)| (code, reason.to_owned()));
            if got != want {
                wrong.push(format!("{rpc:?} {cell:?}: want {want:?}, got {got:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} cells answer otherwise than the forced-change rule says:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    app.finish().await;
}
