use tonic::{Request, Response, Status};

use super::convert::{self, timestamp};
use super::error::to_status;
use super::pb;
use super::request::{authenticated, parse_id};
use crate::core::{Error, Identity};
use crate::domain::PageRequest;

pub struct SessionApi {
    identity: Identity,
}

impl SessionApi {
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

fn unimplemented(what: &'static str) -> Status {
    to_status(Error::Unimplemented(what))
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
            Some(v) => pb::ValidateSessionResponse {
                valid: true,
                session_id: v.session_id.to_string(),
                user_id: v.user_id.to_string(),
                tenant_id: v.tenant_id.to_string(),
                user_name: v.user_name,
                expire_time: Some(timestamp(v.expire_time)),
                is_force_change_password: v.is_force_change_password,
                impersonator_user_id: v.impersonator_user_id.map(|id| id.to_string()).unwrap_or_default(),
            },
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
        _: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        Err(unimplemented("CreateSession"))
    }

    async fn list_sessions(
        &self,
        _: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        Err(unimplemented("ListSessions"))
    }

    async fn update_session(
        &self,
        _: Request<pb::UpdateSessionRequest>,
    ) -> Result<Response<pb::UpdateSessionResponse>, Status> {
        Err(unimplemented("UpdateSession"))
    }

    async fn delete_session(
        &self,
        _: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        Err(unimplemented("DeleteSession"))
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
}
