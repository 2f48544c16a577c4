//! Short forms of the calls the security tests make again and again, each as a given bearer.

use identityd::grpc::pb;
use tonic::Status;

use super::app::{TestApp, bearer};

/// A configuration tweak for tests that create many users: cheap password hashing.
pub fn cheap_hashing(config: &mut identityd::config::Config) {
    config.argon2_memory_kib = 64;
    config.argon2_iterations = 1;
}

/// The reasons of the `login.sso_failed` events, oldest first.
pub async fn sso_failure_reasons(app: &TestApp) -> Vec<String> {
    let request = pb::ListAuditEventsRequest {
        page_size: 100,
        ..Default::default()
    };
    let mut events = app
        .admin
        .clone()
        .list_audit_events(bearer(request, &app.admin_token))
        .await
        .expect("the audit log")
        .into_inner()
        .audit_events;
    events.retain(|e| e.action == "login.sso_failed");
    events.sort_by_key(|e| e.time.map(|t| (t.seconds, t.nanos)));
    events
        .into_iter()
        .map(|e| e.details.get("reason").cloned().unwrap_or_default())
        .collect()
}

/// Logout with `ui_logout`: the redirect URL answered (empty for a session with no provider), and
/// its query parameters.
pub async fn browser_logout(app: &TestApp, session_token: &str) -> (String, std::collections::HashMap<String, String>) {
    let request = pb::LogoutRequest {
        ui_logout: true,
        ..Default::default()
    };
    let out = app
        .login
        .clone()
        .logout(bearer(request, session_token))
        .await
        .expect("logout")
        .into_inner();
    if out.redirect_url.is_empty() {
        return (out.redirect_url, Default::default());
    }
    let url = reqwest::Url::parse(&out.redirect_url).expect("a logout URL");
    let query = url.query_pairs().into_owned().collect();
    (out.redirect_url, query)
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

impl TestApp {
    pub async fn get_user(&self, token: &str, user_id: &str) -> Result<pb::User, Status> {
        let request = pb::GetUserRequest {
            user_id: user_id.into(),
        };
        let response = self.admin.clone().get_user(bearer(request, token)).await?;
        Ok(response.into_inner().user.unwrap())
    }

    pub async fn set_disabled(&self, token: &str, user_id: &str, disabled: bool) -> Result<pb::User, Status> {
        let user_id = user_id.to_owned();
        let mut admin = self.admin.clone();
        let user = if disabled {
            let request = bearer(pb::DisableUserRequest { user_id }, token);
            admin.disable_user(request).await?.into_inner().user
        } else {
            let request = bearer(pb::EnableUserRequest { user_id }, token);
            admin.enable_user(request).await?.into_inner().user
        };
        Ok(user.unwrap())
    }

    pub async fn set_roles(&self, token: &str, user_id: &str, roles: &[pb::Role]) -> Result<pb::User, Status> {
        let request = pb::SetUserRolesRequest {
            user_id: user_id.into(),
            roles: roles.iter().map(|r| *r as i32).collect(),
        };
        let response = self.admin.clone().set_user_roles(bearer(request, token)).await?;
        Ok(response.into_inner().user.unwrap())
    }

    /// Changes a user's first name, and nothing else.
    pub async fn set_first_name(&self, token: &str, user_id: &str, first_name: &str) -> Result<pb::User, Status> {
        let request = pb::UpdateUserRequest {
            user: Some(pb::User {
                user_id: user_id.into(),
                first_name: first_name.into(),
                ..Default::default()
            }),
            update_mask: mask(&["first_name"]),
        };
        let response = self.admin.clone().update_user(bearer(request, token)).await?;
        Ok(response.into_inner().user.unwrap())
    }

    /// Changes the fields of a tenant named in `paths`.
    pub async fn update_tenant(&self, token: &str, tenant: pb::Tenant, paths: &[&str]) -> Result<pb::Tenant, Status> {
        let request = pb::UpdateTenantRequest {
            tenant: Some(tenant),
            update_mask: mask(paths),
        };
        let response = self.admin.clone().update_tenant(bearer(request, token)).await?;
        Ok(response.into_inner().tenant.unwrap())
    }

    /// Creates a user access token for the bearer and returns its secret.
    pub async fn create_token(&self, token: &str, name: &str) -> Result<String, Status> {
        let request = pb::CreateUserAccessTokenRequest {
            user_access_token_name: name.into(),
            ..Default::default()
        };
        let response = self.tokens().create_user_access_token(bearer(request, token)).await?;
        Ok(response.into_inner().token)
    }

    /// Logs in with a user access token.
    pub async fn token_login(&self, secret: &str) -> Result<pb::LoginResponse, Status> {
        let request = pb::LoginRequest {
            token: secret.into(),
            ..Default::default()
        };
        Ok(self.login.clone().login(request).await?.into_inner())
    }
}

impl TestApp {
    /// Changes a user's password, proven with the current one; `token` names a session to keep.
    pub async fn change_password(
        &self,
        token: Option<&str>,
        user_name: &str,
        current: &str,
        new: &str,
    ) -> Result<(), Status> {
        let message = pb::ChangePasswordRequest {
            user_name: user_name.into(),
            current_password: current.into(),
            new_password: new.into(),
        };
        let request = match token {
            Some(token) => bearer(message, token),
            None => tonic::Request::new(message),
        };
        self.login.clone().change_password(request).await.map(|_| ())
    }

    /// Sets a user's password as the bearer; `force_change` marks it to be changed at next login.
    pub async fn set_password(
        &self,
        token: &str,
        user_id: &str,
        password: &str,
        force_change: bool,
    ) -> Result<pb::User, Status> {
        let request = pb::SetUserPasswordRequest {
            user_id: user_id.into(),
            password: password.into(),
            skip_force_change_password: !force_change,
        };
        let response = self.admin.clone().set_user_password(bearer(request, token)).await?;
        Ok(response.into_inner().user.unwrap())
    }

    pub async fn unlock(&self, token: &str, user_id: &str) -> Result<pb::User, Status> {
        let request = pb::UnlockUserRequest {
            user_id: user_id.into(),
        };
        let response = self.admin.clone().unlock_user(bearer(request, token)).await?;
        Ok(response.into_inner().user.unwrap())
    }

    /// The caller's own sessions: a call a session whose password must change may not make.
    pub async fn my_sessions(&self, token: &str) -> Result<Vec<pb::Session>, Status> {
        let request = bearer(pb::ListMySessionsRequest::default(), token);
        let response = self.sessions.clone().list_my_sessions(request).await?;
        Ok(response.into_inner().sessions)
    }
}
