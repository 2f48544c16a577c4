use tonic::{Request, Response, Status};

use super::convert::{self, from_timestamp, password_expiry_from, roles_from, whole_seconds};
use super::error::to_status;
use super::field_mask::{self, mask_paths};
use super::identity_providers;
use super::pb;
use super::request::{authenticated, parse_id, parse_optional_id};
use crate::core::{Error, Identity, NewTenant, NewUser, PasswordSettings, TenantPatch};
use crate::domain::{AuditFilter, PageRequest, ProfilePatch, UserProfile};

pub struct AdminApi {
    identity: Identity,
}

impl AdminApi {
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

fn parse_ids(field: &str, raw: &[String]) -> Result<Vec<uuid::Uuid>, Error> {
    raw.iter().map(|id| parse_id(field, id)).collect()
}

fn next_token(next: Option<crate::domain::PageToken>) -> String {
    next.map(|t| t.encode()).unwrap_or_default()
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let t = req.tenant.ok_or_else(|| Error::invalid("tenant", "is required"))?;
            let expiry = password_expiry_from("tenant.password_expiry", t.password_expiry)?;
            let served = parse_ids("tenant.served_tenant_ids", &t.served_tenant_ids)?;
            let passwords = PasswordSettings {
                min_password_length: t.min_password_length,
                lockout_failures: t.lockout_failures,
                lockout_seconds: whole_seconds("tenant.lockout_duration", t.lockout_duration.as_ref())?,
                max_lockout_seconds: whole_seconds("tenant.max_lockout_duration", t.max_lockout_duration.as_ref())?,
            };
            let new = NewTenant {
                name: t.name,
                password_expiry: expiry,
                max_access_token_days: t.max_access_token_days,
                served_tenant_ids: served,
                passwords,
                // Unset means on, as AgileApps tenants are.
                allow_customer_support: t.allow_customer_support.unwrap_or(true),
            };
            let tenant = self.identity.create_tenant(&caller, new, &meta).await?;
            Ok(pb::CreateTenantResponse {
                tenant: Some(convert::tenant(tenant)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let tenant_id = parse_id("tenant_id", &req.tenant_id)?;
            let tenant = self.identity.get_tenant(&caller, tenant_id).await?;
            Ok(pb::GetTenantResponse {
                tenant: Some(convert::tenant(tenant)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::UpdateTenantResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let t = req.tenant.ok_or_else(|| Error::invalid("tenant", "is required"))?;
            let tenant_id = parse_id("tenant.tenant_id", &t.tenant_id)?;
            let paths = mask_paths(req.update_mask, &field_mask::TENANT_PATHS)?;
            let mut patch = TenantPatch::default();
            for path in &paths {
                match path.as_str() {
                    "name" => patch.name = Some(t.name.clone()),
                    "password_expiry" => {
                        patch.password_expiry = Some(password_expiry_from("tenant.password_expiry", t.password_expiry)?)
                    }
                    "served_tenant_ids" => {
                        patch.served_tenant_ids = Some(parse_ids("tenant.served_tenant_ids", &t.served_tenant_ids)?)
                    }
                    "max_access_token_days" => patch.max_access_token_days = Some(t.max_access_token_days),
                    "min_password_length" => patch.min_password_length = Some(t.min_password_length),
                    "lockout_failures" => patch.lockout_failures = Some(t.lockout_failures),
                    // Unset in the message means on, as on create.
                    "allow_customer_support" => {
                        patch.allow_customer_support = Some(t.allow_customer_support.unwrap_or(true))
                    }
                    "lockout_duration" => {
                        patch.lockout_seconds =
                            Some(whole_seconds("tenant.lockout_duration", t.lockout_duration.as_ref())?)
                    }
                    _ => {
                        patch.max_lockout_seconds = Some(whole_seconds(
                            "tenant.max_lockout_duration",
                            t.max_lockout_duration.as_ref(),
                        )?)
                    }
                }
            }
            let tenant = self.identity.update_tenant(&caller, tenant_id, patch, &meta).await?;
            Ok(pb::UpdateTenantResponse {
                tenant: Some(convert::tenant(tenant)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let u = req.user.ok_or_else(|| Error::invalid("user", "is required"))?;
            let new = NewUser {
                tenant_id: parse_id("user.tenant_id", &u.tenant_id)?,
                user_name: u.user_name,
                password: req.password,
                roles: roles_from("user.roles", &u.roles)?,
                profile: UserProfile {
                    email: u.email,
                    first_name: u.first_name,
                    last_name: u.last_name,
                    time_zone: u.time_zone,
                    locale: u.locale,
                    date_format: u.date_format,
                    employee_number: u.employee_number,
                },
            };
            let user = self.identity.create_user(&caller, new, &meta).await?;
            Ok(pb::CreateUserResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::GetUserResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let user = self
                .identity
                .get_user(&caller, parse_id("user_id", &req.user_id)?)
                .await?;
            Ok(pb::GetUserResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let tenant_id = parse_id("tenant_id", &req.tenant_id)?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (users, next) = self.identity.list_users(&caller, tenant_id, page).await?;
            Ok(pb::ListUsersResponse {
                users: users.into_iter().map(convert::user).collect(),
                next_page_token: next_token(next),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let u = req.user.ok_or_else(|| Error::invalid("user", "is required"))?;
            let user_id = parse_id("user.user_id", &u.user_id)?;
            let paths = mask_paths(req.update_mask, &field_mask::USER_PATHS)?;
            let mut patch = ProfilePatch::default();
            for path in &paths {
                let (slot, value) = match path.as_str() {
                    "email" => (&mut patch.email, &u.email),
                    "first_name" => (&mut patch.first_name, &u.first_name),
                    "last_name" => (&mut patch.last_name, &u.last_name),
                    "time_zone" => (&mut patch.time_zone, &u.time_zone),
                    "locale" => (&mut patch.locale, &u.locale),
                    "date_format" => (&mut patch.date_format, &u.date_format),
                    _ => (&mut patch.employee_number, &u.employee_number),
                };
                *slot = Some(value.clone());
            }
            let user = self.identity.update_user(&caller, user_id, patch, &meta).await?;
            Ok(pb::UpdateUserResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let user = self
                .identity
                .set_user_disabled(&caller, parse_id("user_id", &req.user_id)?, true, &meta)
                .await?;
            Ok(pb::DisableUserResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn enable_user(
        &self,
        request: Request<pb::EnableUserRequest>,
    ) -> Result<Response<pb::EnableUserResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let user = self
                .identity
                .set_user_disabled(&caller, parse_id("user_id", &req.user_id)?, false, &meta)
                .await?;
            Ok(pb::EnableUserResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn set_user_roles(
        &self,
        request: Request<pb::SetUserRolesRequest>,
    ) -> Result<Response<pb::SetUserRolesResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let user_id = parse_id("user_id", &req.user_id)?;
            let roles = roles_from("roles", &req.roles)?;
            let user = self.identity.set_user_roles(&caller, user_id, roles, &meta).await?;
            Ok(pb::SetUserRolesResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn set_user_password(
        &self,
        request: Request<pb::SetUserPasswordRequest>,
    ) -> Result<Response<pb::SetUserPasswordResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let user_id = parse_id("user_id", &req.user_id)?;
            let user = self
                .identity
                .set_user_password(&caller, user_id, &req.password, !req.skip_force_change_password, &meta)
                .await?;
            Ok(pb::SetUserPasswordResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn unlock_user(
        &self,
        request: Request<pb::UnlockUserRequest>,
    ) -> Result<Response<pb::UnlockUserResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let user = self
                .identity
                .unlock_user(&caller, parse_id("user_id", &req.user_id)?, &meta)
                .await?;
            Ok(pb::UnlockUserResponse {
                user: Some(convert::user(user)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::CreateServiceAccountResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let tenant_id = parse_id("tenant_id", &req.tenant_id)?;
            let account = self
                .identity
                .create_service_account(&caller, tenant_id, &req.name, &req.description, &meta)
                .await?;
            Ok(pb::CreateServiceAccountResponse {
                service_account: Some(convert::service_account(account)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_service_accounts(
        &self,
        request: Request<pb::ListServiceAccountsRequest>,
    ) -> Result<Response<pb::ListServiceAccountsResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let tenant_id = parse_id("tenant_id", &req.tenant_id)?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (accounts, next) = self.identity.list_service_accounts(&caller, tenant_id, page).await?;
            Ok(pb::ListServiceAccountsResponse {
                service_accounts: accounts.into_iter().map(convert::service_account).collect(),
                next_page_token: next_token(next),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_user_sessions(
        &self,
        request: Request<pb::ListUserSessionsRequest>,
    ) -> Result<Response<pb::ListUserSessionsResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let user_id = parse_id("user_id", &req.user_id)?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (sessions, next) = self
                .identity
                .list_user_sessions(&caller, user_id, req.include_ended, page)
                .await?;
            Ok(pb::ListUserSessionsResponse {
                sessions: sessions.into_iter().map(convert::session).collect(),
                next_page_token: next_token(next),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Result<Response<pb::RevokeUserSessionsResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let user_id = parse_id("user_id", &req.user_id)?;
            let session_id = parse_optional_id("session_id", &req.session_id)?;
            let revoked = self
                .identity
                .revoke_user_sessions(&caller, user_id, session_id, &meta)
                .await?;
            Ok(pb::RevokeUserSessionsResponse {
                revoked_count: i32::try_from(revoked).unwrap_or(i32::MAX),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let filter = AuditFilter {
                tenant_id: parse_optional_id("tenant_id", &req.tenant_id)?,
                user_id: parse_optional_id("user_id", &req.user_id)?,
                action: (!req.action.is_empty()).then_some(req.action),
                start_time: req
                    .start_time
                    .as_ref()
                    .map(|t| from_timestamp("start_time", t))
                    .transpose()?,
                end_time: req
                    .end_time
                    .as_ref()
                    .map(|t| from_timestamp("end_time", t))
                    .transpose()?,
            };
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (events, next) = self.identity.list_audit_events(&caller, filter, page).await?;
            Ok(pb::ListAuditEventsResponse {
                audit_events: events.into_iter().map(convert::audit_event).collect(),
                next_page_token: next_token(next),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn create_identity_provider(
        &self,
        request: Request<pb::CreateIdentityProviderRequest>,
    ) -> Result<Response<pb::CreateIdentityProviderResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let p = req
                .identity_provider
                .ok_or_else(|| Error::invalid("identity_provider", "is required"))?;
            let tenant_id = parse_id("identity_provider.tenant_id", &p.tenant_id)?;
            let patch = identity_providers::patch(&p, &identity_providers::MASK_PATHS)?;
            let created = self
                .identity
                .create_identity_provider(&caller, tenant_id, patch, &meta)
                .await?;
            Ok(pb::CreateIdentityProviderResponse {
                identity_provider: Some(identity_providers::identity_provider(created)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn get_identity_provider(
        &self,
        request: Request<pb::GetIdentityProviderRequest>,
    ) -> Result<Response<pb::GetIdentityProviderResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let tenant_id = parse_id("tenant_id", &req.tenant_id)?;
            let provider = self.identity.get_identity_provider(&caller, tenant_id).await?;
            Ok(pb::GetIdentityProviderResponse {
                identity_provider: Some(identity_providers::identity_provider(provider)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_identity_providers(
        &self,
        request: Request<pb::ListIdentityProvidersRequest>,
    ) -> Result<Response<pb::ListIdentityProvidersResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (providers, next) = self.identity.list_identity_providers(&caller, page).await?;
            Ok(pb::ListIdentityProvidersResponse {
                identity_providers: providers
                    .into_iter()
                    .map(identity_providers::identity_provider)
                    .collect(),
                next_page_token: next_token(next),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn update_identity_provider(
        &self,
        request: Request<pb::UpdateIdentityProviderRequest>,
    ) -> Result<Response<pb::UpdateIdentityProviderResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let p = req
                .identity_provider
                .ok_or_else(|| Error::invalid("identity_provider", "is required"))?;
            let tenant_id = parse_id("identity_provider.tenant_id", &p.tenant_id)?;
            let paths = mask_paths(req.update_mask, &identity_providers::MASK_PATHS)?;
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            let patch = identity_providers::patch(&p, &paths)?;
            let updated = self
                .identity
                .update_identity_provider(&caller, tenant_id, patch, &meta)
                .await?;
            Ok(pb::UpdateIdentityProviderResponse {
                identity_provider: Some(identity_providers::identity_provider(updated)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn delete_identity_provider(
        &self,
        request: Request<pb::DeleteIdentityProviderRequest>,
    ) -> Result<Response<pb::DeleteIdentityProviderResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let tenant_id = parse_id("tenant_id", &req.tenant_id)?;
            self.identity
                .delete_identity_provider(&caller, tenant_id, &meta)
                .await?;
            Ok(pb::DeleteIdentityProviderResponse {})
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }
}
