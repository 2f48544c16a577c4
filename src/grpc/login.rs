use tonic::{Request, Response, Status};

use super::convert::{self, login_response};
use super::error::to_status;
use super::pb;
use super::request::{authenticated, meta, optional_caller, parse_optional_id};
use crate::core::{Error, Identity, SsoCallback};
use crate::domain::device_name;

pub struct LoginApi {
    identity: Identity,
}

impl LoginApi {
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

#[tonic::async_trait]
impl pb::login_service_server::LoginService for LoginApi {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let mut meta = meta(&request);
        let req = request.into_inner();
        meta.device_name =
            device_name("device_name", &req.device_name).map_err(|v| to_status(Error::InvalidArgument(vec![v])))?;
        if !req.token.is_empty() {
            if !req.password.is_empty() {
                return Err(to_status(Error::invalid(
                    "token",
                    "give either a token or a password, not both",
                )));
            }
            let outcome = self
                .identity
                .login_with_access_token(&req.token, &meta)
                .await
                .map_err(to_status)?;
            return Ok(Response::new(login_response!(LoginResponse, outcome)));
        }
        let outcome = self
            .identity
            .login_with_password(&req.user_name, &req.password, &meta)
            .await
            .map_err(to_status)?;
        Ok(Response::new(login_response!(LoginResponse, outcome)))
    }

    async fn start_sso(&self, request: Request<pb::StartSsoRequest>) -> Result<Response<pb::StartSsoResponse>, Status> {
        let meta = meta(&request);
        let req = request.into_inner();
        let start = self
            .identity
            .start_sso(&req.tenant_id, &req.redirect_uri, &meta)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::StartSsoResponse {
            authorization_url: start.authorization_url,
            state: start.state,
        }))
    }

    async fn login_sso(&self, request: Request<pb::LoginSsoRequest>) -> Result<Response<pb::LoginSsoResponse>, Status> {
        let meta = meta(&request);
        let req = request.into_inner();
        if !req.saml_response.is_empty() {
            if !req.code.is_empty() || !req.token.is_empty() {
                return Err(to_status(Error::invalid(
                    "saml_response",
                    "give either a SAML response, a code and state, or a token",
                )));
            }
            let outcome = self
                .identity
                .login_saml_sso(&req.saml_response, &req.state, &req.tenant_id, &meta)
                .await
                .map_err(to_status)?;
            return Ok(Response::new(login_response!(LoginSsoResponse, outcome)));
        }
        if !req.token.is_empty() {
            if !req.code.is_empty() || !req.state.is_empty() {
                return Err(to_status(Error::invalid(
                    "token",
                    "give either a token or a code and state, not both",
                )));
            }
            let outcome = self
                .identity
                .login_with_access_token(&req.token, &meta)
                .await
                .map_err(to_status)?;
            return Ok(Response::new(login_response!(LoginSsoResponse, outcome)));
        }
        let callback = SsoCallback {
            code: &req.code,
            state: &req.state,
            iss: &req.iss,
            redirect_uri: &req.redirect_uri,
        };
        let outcome = self.identity.login_sso(callback, &meta).await.map_err(to_status)?;
        Ok(Response::new(login_response!(LoginSsoResponse, outcome)))
    }

    async fn get_saml_metadata(
        &self,
        request: Request<pb::GetSamlMetadataRequest>,
    ) -> Result<Response<pb::GetSamlMetadataResponse>, Status> {
        let req = request.into_inner();
        let metadata_xml = self.identity.saml_metadata(&req.tenant_id).await.map_err(to_status)?;
        Ok(Response::new(pb::GetSamlMetadataResponse { metadata_xml }))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        let result = async {
            let (caller, meta, req) = authenticated(&self.identity, request).await?;
            let ended = if !req.jwt_token.is_empty() {
                if !req.session_id.is_empty() {
                    return Err(Error::invalid(
                        "jwt_token",
                        "give either a session_id or a jwt_token, not both",
                    ));
                }
                Some(self.identity.logout_by_jwt(&caller, &req.jwt_token, &meta).await?)
            } else {
                let session_id = parse_optional_id("session_id", &req.session_id)?;
                self.identity.logout(&caller, session_id, &meta).await?;
                session_id.or(caller.session_id)
            };
            // Only SSO sessions have an identity provider to send the browser to.
            let redirect_url = match (req.ui_logout, ended) {
                (true, Some(session_id)) => self
                    .identity
                    .sso_logout_url(caller.tenant_id, session_id)
                    .await?
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Ok(pb::LogoutResponse { redirect_url })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn login_as_customer_support(
        &self,
        request: Request<pb::LoginAsCustomerSupportRequest>,
    ) -> Result<Response<pb::LoginAsCustomerSupportResponse>, Status> {
        let result = async {
            let (original, meta, req) = optional_caller(&self.identity, request).await?;
            let outcome = self
                .identity
                .login_as_customer_support(
                    original.as_ref(),
                    &req.user_name,
                    &req.password,
                    &req.client_tenant_id,
                    &meta,
                )
                .await?;
            Ok(login_response!(LoginAsCustomerSupportResponse, outcome))
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn proxy_login(
        &self,
        request: Request<pb::ProxyLoginRequest>,
    ) -> Result<Response<pb::ProxyLoginResponse>, Status> {
        let result = async {
            let (original, meta, req) = optional_caller(&self.identity, request).await?;
            let outcome = self
                .identity
                .proxy_login(
                    original.as_ref(),
                    &req.user_name,
                    &req.password,
                    &req.proxy_user_id,
                    &meta,
                )
                .await?;
            Ok(login_response!(ProxyLoginResponse, outcome))
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn switch_back(
        &self,
        request: Request<pb::SwitchBackRequest>,
    ) -> Result<Response<pb::SwitchBackResponse>, Status> {
        let result = async {
            let (caller, meta, _) = authenticated(&self.identity, request).await?;
            let back = self.identity.switch_back(&caller, &meta).await?;
            Ok(pb::SwitchBackResponse {
                user: Some(convert::user(back.user)),
                organization_id: back.tenant.tenant_id.to_string(),
                organization_name: back.tenant.name,
                session: Some(convert::session(back.session)),
                resumed_original_session: back.token.is_none(),
                session_token: back.token.map(|t| t.expose().to_owned()).unwrap_or_default(),
                is_force_change_password: back.is_force_change_password,
                session_jwt: back.jwt.map(|jwt| jwt.token).unwrap_or_default(),
            })
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let result = async {
            // The metadata is optional: when it names one of the user's sessions, that one stays open.
            let (caller, meta, req) = optional_caller(&self.identity, request).await?;
            self.identity
                .change_password(
                    caller.as_ref(),
                    &req.user_name,
                    &req.current_password,
                    &req.new_password,
                    &meta,
                )
                .await?;
            Ok(pb::ChangePasswordResponse {})
        }
        .await;
        result.map(Response::new).map_err(to_status)
    }
}
