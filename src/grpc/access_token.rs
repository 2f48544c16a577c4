use tonic::{Request, Response, Status};

use super::convert;
use super::error::to_status;
use super::pb;
use super::request::authenticated;
use crate::core::{Identity, NewAccessToken};
use crate::domain::PageRequest;

pub struct AccessTokenApi {
    identity: Identity,
}

impl AccessTokenApi {
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

fn next_token(next: Option<crate::domain::PageToken>) -> String {
    next.map(|t| t.encode()).unwrap_or_default()
}

#[tonic::async_trait]
impl pb::access_token_service_server::AccessTokenService for AccessTokenApi {
    async fn create_user_access_token(
        &self,
        request: Request<pb::CreateUserAccessTokenRequest>,
    ) -> Result<Response<pb::CreateUserAccessTokenResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let new = NewAccessToken {
                name: req.user_access_token_name,
                description: req.description,
                expiration_days: req.expiration_days,
            };
            let (view, secret) = self.identity.create_access_token(&caller, new, &meta).await?;
            Ok(pb::CreateUserAccessTokenResponse {
                user_access_token: Some(convert::access_token(view)),
                token: secret.expose().to_owned(),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn get_user_access_token(
        &self,
        request: Request<pb::GetUserAccessTokenRequest>,
    ) -> Result<Response<pb::GetUserAccessTokenResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let view = self
                .identity
                .get_access_token(&caller, &req.user_access_token_name, &req.user_name)
                .await?;
            Ok(pb::GetUserAccessTokenResponse {
                user_access_token: Some(convert::access_token(view)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_user_access_tokens(
        &self,
        request: Request<pb::ListUserAccessTokensRequest>,
    ) -> Result<Response<pb::ListUserAccessTokensResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (views, next) = self.identity.list_access_tokens(&caller, &req.user_name, page).await?;
            Ok(pb::ListUserAccessTokensResponse {
                user_access_tokens: views.into_iter().map(convert::access_token).collect(),
                next_page_token: next_token(next),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn update_user_access_token(
        &self,
        request: Request<pb::UpdateUserAccessTokenRequest>,
    ) -> Result<Response<pb::UpdateUserAccessTokenResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let view = self
                .identity
                .update_access_token(
                    &caller,
                    &req.user_access_token_name,
                    &req.new_name,
                    req.description.as_deref(),
                    &meta,
                )
                .await?;
            Ok(pb::UpdateUserAccessTokenResponse {
                user_access_token: Some(convert::access_token(view)),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn delete_user_access_token(
        &self,
        request: Request<pb::DeleteUserAccessTokenRequest>,
    ) -> Result<Response<pb::DeleteUserAccessTokenResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            self.identity
                .revoke_access_token(&caller, &req.user_access_token_name, &meta)
                .await?;
            Ok(pb::DeleteUserAccessTokenResponse {})
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn rotate_user_access_token(
        &self,
        request: Request<pb::RotateUserAccessTokenRequest>,
    ) -> Result<Response<pb::RotateUserAccessTokenResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let (view, secret) = self
                .identity
                .rotate_access_token(&caller, &req.user_access_token_name, &meta)
                .await?;
            Ok(pb::RotateUserAccessTokenResponse {
                user_access_token: Some(convert::access_token(view)),
                token: secret.expose().to_owned(),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn list_user_access_token_sessions(
        &self,
        request: Request<pb::ListUserAccessTokenSessionsRequest>,
    ) -> Result<Response<pb::ListUserAccessTokenSessionsResponse>, Status> {
        let result = async {
            let (caller, _, req) = authenticated(&self.identity, request).await?;
            let page = PageRequest::parse(req.page_size, &req.page_token)?;
            let (sessions, next) = self
                .identity
                .list_access_token_sessions(
                    &caller,
                    &req.user_access_token_name,
                    &req.user_name,
                    req.include_ended,
                    page,
                )
                .await?;
            Ok(pb::ListUserAccessTokenSessionsResponse {
                sessions: sessions.into_iter().map(convert::session).collect(),
                next_page_token: next_token(next),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }
}
