use tonic::{Request, Response, Status};

use super::error::to_status;
use super::pb;
use crate::core::{Error, Identity};

/// User access tokens: declared in the contract, not served yet.
pub struct AccessTokenApi {
    #[allow(dead_code)]
    identity: Identity,
}

impl AccessTokenApi {
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

fn unimplemented(what: &'static str) -> Status {
    to_status(Error::Unimplemented(what))
}

#[tonic::async_trait]
impl pb::access_token_service_server::AccessTokenService for AccessTokenApi {
    async fn create_user_access_token(
        &self,
        _: Request<pb::CreateUserAccessTokenRequest>,
    ) -> Result<Response<pb::CreateUserAccessTokenResponse>, Status> {
        Err(unimplemented("CreateUserAccessToken"))
    }

    async fn get_user_access_token(
        &self,
        _: Request<pb::GetUserAccessTokenRequest>,
    ) -> Result<Response<pb::GetUserAccessTokenResponse>, Status> {
        Err(unimplemented("GetUserAccessToken"))
    }

    async fn list_user_access_tokens(
        &self,
        _: Request<pb::ListUserAccessTokensRequest>,
    ) -> Result<Response<pb::ListUserAccessTokensResponse>, Status> {
        Err(unimplemented("ListUserAccessTokens"))
    }

    async fn update_user_access_token(
        &self,
        _: Request<pb::UpdateUserAccessTokenRequest>,
    ) -> Result<Response<pb::UpdateUserAccessTokenResponse>, Status> {
        Err(unimplemented("UpdateUserAccessToken"))
    }

    async fn delete_user_access_token(
        &self,
        _: Request<pb::DeleteUserAccessTokenRequest>,
    ) -> Result<Response<pb::DeleteUserAccessTokenResponse>, Status> {
        Err(unimplemented("DeleteUserAccessToken"))
    }

    async fn rotate_user_access_token(
        &self,
        _: Request<pb::RotateUserAccessTokenRequest>,
    ) -> Result<Response<pb::RotateUserAccessTokenResponse>, Status> {
        Err(unimplemented("RotateUserAccessToken"))
    }

    async fn list_user_access_token_sessions(
        &self,
        _: Request<pb::ListUserAccessTokenSessionsRequest>,
    ) -> Result<Response<pb::ListUserAccessTokenSessionsResponse>, Status> {
        Err(unimplemented("ListUserAccessTokenSessions"))
    }
}
