use tonic::{Request, Response, Status};

use super::convert::{self, timestamp};
use super::error::to_status;
use super::pb;
use super::request::{authenticated, parse_id};
use crate::core::{Identity, Principal};
use crate::domain::PageRequest;

pub struct SessionApi {
    identity: Identity,
}

impl SessionApi {
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

#[tonic::async_trait]
impl pb::session_service_server::SessionService for SessionApi {
    async fn validate_session(
        &self,
        request: Request<pb::ValidateSessionRequest>,
    ) -> Result<Response<pb::ValidateSessionResponse>, Status> {
        let req = request.into_inner();
        let validity = self
            .identity
            .validate_session(&req.session_token)
            .await
            .map_err(to_status)?;
        let response = match validity {
            None => pb::ValidateSessionResponse::default(),
            Some(v) => {
                let mut response = pb::ValidateSessionResponse {
                    valid: true,
                    session_id: v.session_id.to_string(),
                    tenant_id: v.tenant_id.to_string(),
                    expire_time: Some(timestamp(v.expire_time)),
                    is_force_change_password: v.is_force_change_password,
                    impersonator_user_id: v.impersonator_user_id.map(|id| id.to_string()).unwrap_or_default(),
                    ..Default::default()
                };
                match v.principal {
                    Principal::User { user_id, user_name } => {
                        response.set_principal_kind(pb::PrincipalKind::User);
                        response.user_id = user_id.to_string();
                        response.user_name = user_name;
                    }
                    Principal::ServiceAccount {
                        service_account_id,
                        name,
                    } => {
                        response.set_principal_kind(pb::PrincipalKind::ServiceAccount);
                        response.service_account_id = service_account_id.to_string();
                        response.service_account_name = name;
                    }
                }
                response
            }
        };
        Ok(Response::new(response))
    }

    async fn get_current_user(
        &self,
        request: Request<pb::GetCurrentUserRequest>,
    ) -> Result<Response<pb::GetCurrentUserResponse>, Status> {
        let result = async {
            let (caller, _, _) = authenticated(&self.identity, request).await?;
            let (user, organization_name, session) = self.identity.current_user(&caller).await?;
            Ok(pb::GetCurrentUserResponse {
                user: Some(convert::user(user)),
                organization_name,
                session: session.map(convert::session),
                is_force_change_password: caller.password_must_change(),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let (session, token) = self
                .identity
                .create_service_account_session(
                    &caller,
                    &req.service_account_name,
                    &req.expiration_date,
                    &req.time_zone,
                    &meta,
                )
                .await?;
            Ok(pb::CreateSessionResponse {
                session: Some(convert::session(session)),
                session_token: token.expose().to_owned(),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (sessions, next) = self
                .identity
                .list_service_account_sessions(&caller, &req.service_account_name, page)
                .await?;
            Ok(pb::ListSessionsResponse {
                sessions: sessions.into_iter().map(convert::session).collect(),
                next_page_token: next.map(|t| t.encode()).unwrap_or_default(),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn update_session(
        &self,
        request: Request<pb::UpdateSessionRequest>,
    ) -> Result<Response<pb::UpdateSessionResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let session_id = parse_id("session_id", &req.session_id)?;
            let session = self
                .identity
                .update_service_account_session(&caller, session_id, &req.expiration_date, &req.time_zone, &meta)
                .await?;
            Ok(pb::UpdateSessionResponse {
                session: Some(convert::session(session)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let session_id = parse_id("session_id", &req.session_id)?;
            self.identity
                .delete_service_account_session(&caller, session_id, &meta)
                .await?;
            Ok(pb::DeleteSessionResponse {})
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_my_sessions(
        &self,
        request: Request<pb::ListMySessionsRequest>,
    ) -> Result<Response<pb::ListMySessionsResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (sessions, next) = self.identity.list_my_sessions(&caller, page).await?;
            Ok(pb::ListMySessionsResponse {
                sessions: sessions.into_iter().map(convert::session).collect(),
                next_page_token: next.map(|t| t.encode()).unwrap_or_default(),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn revoke_my_session(
        &self,
        request: Request<pb::RevokeMySessionRequest>,
    ) -> Result<Response<pb::RevokeMySessionResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let session_id = parse_id("session_id", &req.session_id)?;
            self.identity.revoke_my_session(&caller, session_id, &meta).await?;
            Ok(pb::RevokeMySessionResponse {})
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn revoke_my_other_sessions(
        &self,
        request: Request<pb::RevokeMyOtherSessionsRequest>,
    ) -> Result<Response<pb::RevokeMyOtherSessionsResponse>, Status> {
        let result = async {
            let (caller, meta, _) = authenticated(&self.identity, request).await?;
            let revoked = self.identity.revoke_my_other_sessions(&caller, &meta).await?;
            Ok(pb::RevokeMyOtherSessionsResponse {
                revoked_count: i32::try_from(revoked).unwrap_or(i32::MAX),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn get_jwks(&self, _: Request<pb::GetJwksRequest>) -> Result<Response<pb::GetJwksResponse>, Status> {
        let jwks = self.identity.jwks().await.map_err(to_status)?;
        Ok(Response::new(pb::GetJwksResponse {
            jwks_json: jwks.to_json(),
            keys: jwks
                .keys
                .into_iter()
                .map(|k| pb::Jwk {
                    kid: k.key_id,
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    x: k.x,
                    y: k.y,
                    r#use: "sig".into(),
                    alg: "ES256".into(),
                })
                .collect(),
            issuer: jwks.issuer,
            audience: jwks.audience,
        }))
    }

    async fn refresh_session_jwt(
        &self,
        request: Request<pb::RefreshSessionJwtRequest>,
    ) -> Result<Response<pb::RefreshSessionJwtResponse>, Status> {
        let result = async {
            let (caller, _, _) = authenticated(&self.identity, request).await?;
            let jwt = self.identity.refresh_session_jwt(&caller).await?;
            Ok(pb::RefreshSessionJwtResponse {
                expire_time: Some(timestamp(jwt.expire_time)),
                session_jwt: jwt.token,
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }
}
