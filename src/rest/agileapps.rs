//! The AgileApps session resources under `/networking/rest/`: each handler reads the request,
//! calls the core as the gRPC services do, and writes the AgileApps answer.
//!
//! In this dialect `sessionId` carries the session token, the secret AgileApps clients send back
//! as their credential, and `cookieString` the session cookie (`name=token`) that clients build
//! their `Cookie` header from.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::RestState;
use super::credentials::{self, Source};
use super::error::{XmlError, reason};
use super::xml::{self, LoginDetails, LoginReply, Message, MessageReply, XmlRefusal};
use crate::core::{Caller, Error, LoginOutcome, RequestMeta, SessionView, TenantRef, UserView};

type Answer = Result<Response, XmlError>;

/// `POST /networking/rest/login`: signs in with a user name and password.
pub async fn login(State(state): State<RestState>, request: Request) -> Response {
    answer(async {
        let (parts, body) = xml_body(&state, request).await?;
        let req: xml::LoginRequest = read(&body)?;
        let meta = credentials::meta(&parts.headers, &parts.extensions);
        let outcome = state
            .identity
            .login_with_password(&req.login.user_name, &req.login.password, &meta)
            .await?;
        Ok(logged_in(&state, outcome, Vec::new()))
    })
    .await
}

/// `POST /networking/rest/login/customerSupport`: signs a support user into a client tenant.
pub async fn login_as_customer_support(State(state): State<RestState>, request: Request) -> Response {
    answer(async {
        let (parts, body) = xml_body(&state, request).await?;
        let req: xml::LoginRequest = read(&body)?;
        let meta = credentials::meta(&parts.headers, &parts.extensions);
        let original = original_caller(&state, &parts.headers, &meta).await?;
        let outcome = state
            .identity
            .login_as_customer_support(
                original.as_ref().map(|(caller, _)| caller),
                &req.login.user_name,
                &req.login.password,
                &req.login.client_tenant_id,
                &meta,
            )
            .await?;
        Ok(logged_in(
            &state,
            outcome,
            keep_original(&state, &parts.headers, original.as_ref()),
        ))
    })
    .await
}

/// `POST /networking/rest/login/proxyLogin`: signs a user in as another user.
pub async fn proxy_login(State(state): State<RestState>, request: Request) -> Response {
    answer(async {
        let (parts, body) = xml_body(&state, request).await?;
        let req: xml::LoginRequest = read(&body)?;
        let meta = credentials::meta(&parts.headers, &parts.extensions);
        let original = original_caller(&state, &parts.headers, &meta).await?;
        let outcome = state
            .identity
            .proxy_login(
                original.as_ref().map(|(caller, _)| caller),
                &req.login.user_name,
                &req.login.password,
                &req.login.proxy_user_id,
                &meta,
            )
            .await?;
        Ok(logged_in(
            &state,
            outcome,
            keep_original(&state, &parts.headers, original.as_ref()),
        ))
    })
    .await
}

/// `GET /networking/rest/login/proxyLogin/switchBack`: ends the proxy or customer-support session
/// and gives the real user their own session back.
pub async fn switch_back(State(state): State<RestState>, request: Request) -> Response {
    answer(async {
        let (parts, _) = request.into_parts();
        let meta = credentials::meta(&parts.headers, &parts.extensions);
        let caller = changing_caller(&state, &parts.headers, &meta).await?;
        let back = state.identity.switch_back(&caller, &meta).await?;
        let mut cookies = Vec::new();
        let original_name = state.cookies.original_name();
        let kept = credentials::cookie(&parts.headers, &original_name);
        if kept.is_some() {
            cookies.push(state.cookies.set_cookie(&original_name, "", Some(Duration::ZERO)));
        }
        let token = match back.token {
            Some(token) => Some(token.expose().to_owned()),
            // The original session was resumed: its token is the one kept at the login, if the
            // login came through the cookie; a bearer client still holds its own.
            None => match kept {
                Some(kept) => match state.identity.validate_session(kept).await? {
                    Some(v) if v.session_id == back.session.session_id => Some(kept.to_owned()),
                    _ => None,
                },
                None => None,
            },
        };
        let details = details(&back.user, &back.tenant, back.is_force_change_password);
        Ok(session_answer(
            &state,
            details,
            token.as_deref(),
            &back.session,
            cookies,
        ))
    })
    .await
}

/// `GET /networking/rest/logout` (and `POST`): ends the session the request comes with.
pub async fn logout(State(state): State<RestState>, request: Request) -> Response {
    answer(async {
        let (parts, _) = request.into_parts();
        let meta = credentials::meta(&parts.headers, &parts.extensions);
        let caller = changing_caller(&state, &parts.headers, &meta).await?;
        state.identity.logout(&caller, None, &meta).await?;
        let clear = state.cookies.set_cookie(&state.cookies.name, "", Some(Duration::ZERO));
        Ok(xml_ok(
            &MessageReply {
                message: Message::success(),
            },
            vec![clear],
        ))
    })
    .await
}

/// `GET /networking/rest/user/isSessionValid`: whether the request's session is valid; a request
/// without one is answered `false`, as ValidateSession answers an empty token.
pub async fn is_session_valid(State(state): State<RestState>, headers: HeaderMap) -> Response {
    answer(async {
        let valid = match credentials::session_token(&headers, &state.cookies)? {
            Some((token, _)) => state.identity.validate_session(token).await?.is_some(),
            None => false,
        };
        Ok(xml_ok(
            &xml::SessionValidReply {
                user: xml::SessionValid {
                    is_session_valid: valid,
                },
                message: Message::success(),
            },
            Vec::new(),
        ))
    })
    .await
}

/// `GET /networking/rest/user/info`: the signed-in user's record.
pub async fn user_info(State(state): State<RestState>, request: Request) -> Response {
    answer(async {
        let (parts, _) = request.into_parts();
        let meta = credentials::meta(&parts.headers, &parts.extensions);
        let (caller, _) = caller(&state, &parts.headers, &meta).await?;
        let (user, organization_name, _) = state.identity.current_user(&caller).await?;
        let profile = &user.profile;
        let info = xml::UserInfo {
            user_id: user.user_id.to_string(),
            email: profile.email.clone(),
            user_name: user.user_name.clone(),
            first_name: profile.first_name.clone(),
            last_name: profile.last_name.clone(),
            is_force_change_password: caller.password_must_change(),
            organization_name,
            organization_id: user.tenant_id.to_string(),
            time_zone: profile.time_zone.clone(),
            employee_number: profile.employee_number.clone(),
            user_locale: profile.locale.clone(),
            user_date_format: profile.date_format.clone(),
        };
        Ok(xml_ok(
            &xml::UserInfoReply {
                user: info,
                message: Message::success(),
            },
            Vec::new(),
        ))
    })
    .await
}

/// `POST /networking/rest/user/password`: changes a password (the update a client sends when the
/// login answers `isForceChangePassword`). A session given with it, of the same user, stays open.
pub async fn change_password(State(state): State<RestState>, request: Request) -> Response {
    answer(async {
        let (parts, body) = xml_body(&state, request).await?;
        let req: xml::PasswordRequest = read(&body)?;
        let meta = credentials::meta(&parts.headers, &parts.extensions);
        let caller = original_caller(&state, &parts.headers, &meta).await?;
        state
            .identity
            .change_password(
                caller.as_ref().map(|(caller, _)| caller),
                &req.user.user_name,
                &req.user.old_password,
                &req.user.new_password,
                &meta,
            )
            .await?;
        Ok(xml_ok(
            &MessageReply {
                message: Message::success(),
            },
            Vec::new(),
        ))
    })
    .await
}

/// Any other path under `/networking/rest/`.
pub async fn not_found() -> Response {
    XmlError::new(StatusCode::NOT_FOUND, reason::NO_SUCH_RESOURCE, "no such resource").into_response()
}

async fn answer(work: impl Future<Output = Answer>) -> Response {
    work.await.unwrap_or_else(IntoResponse::into_response)
}

/// The body of a request that must be XML, read up to the size limit.
async fn xml_body(state: &RestState, request: Request) -> Result<(Parts, Bytes), XmlError> {
    let (parts, body) = request.into_parts();
    let essence = credentials::media_type(&parts.headers);
    if !(essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml")) {
        return Err(XmlError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason::UNSUPPORTED_CONTENT_TYPE,
            "send the body as application/xml",
        ));
    }
    let body = read_limited(body, state.max_request_bytes)
        .await
        .map_err(|()| too_large(state.max_request_bytes))?;
    Ok((parts, body))
}

/// Reads a body of at most `max` bytes; `Err` when it is larger (or breaks off).
pub(super) async fn read_limited(body: axum::body::Body, max: usize) -> Result<Bytes, ()> {
    Limited::new(body, max)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|_| ())
}

fn too_large(max: usize) -> XmlError {
    XmlError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        reason::BODY_TOO_LARGE,
        format!("the body is larger than the {max} bytes this server accepts"),
    )
}

fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, XmlError> {
    xml::read(body).map_err(|refusal| match refusal {
        XmlRefusal::Doctype => XmlError::new(
            StatusCode::BAD_REQUEST,
            reason::XML_DOCTYPE_REFUSED,
            "document type declarations (DOCTYPE) are not accepted",
        ),
        XmlRefusal::Malformed(why) => XmlError::new(
            StatusCode::BAD_REQUEST,
            reason::MALFORMED_XML,
            format!("the body is not a <platform> request of this resource: {why}"),
        ),
    })
}

/// The caller named by the request's session, which it must have.
async fn caller(state: &RestState, headers: &HeaderMap, meta: &RequestMeta) -> Result<(Caller, Source), XmlError> {
    let (token, source) = credentials::session_token(headers, &state.cookies)?.ok_or(Error::MissingCredentials)?;
    Ok((state.identity.authenticate(Some(token), meta).await?, source))
}

/// As [`caller`], for a request that changes state: through the cookie alone, it must show it is
/// not a cross-site form.
async fn changing_caller(state: &RestState, headers: &HeaderMap, meta: &RequestMeta) -> Result<Caller, XmlError> {
    let (caller, source) = caller(state, headers, meta).await?;
    if source == Source::Cookie && !credentials::not_cross_site(headers) {
        return Err(XmlError::new(
            StatusCode::FORBIDDEN,
            reason::CROSS_SITE_REQUEST,
            "a change made with the session cookie needs an XML or JSON content type or an X-Requested-With header",
        ));
    }
    Ok(caller)
}

/// The session a login comes from, if any: a bearer header must be valid; a cookie that is not
/// (a browser keeps stale ones) is no session.
async fn original_caller(
    state: &RestState,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Result<Option<(Caller, Source)>, XmlError> {
    match credentials::session_token(headers, &state.cookies)? {
        None => Ok(None),
        Some((token, Source::Bearer)) => Ok(Some((
            state.identity.authenticate(Some(token), meta).await?,
            Source::Bearer,
        ))),
        Some((token, Source::Cookie)) => Ok(state
            .identity
            .authenticate(Some(token), meta)
            .await
            .ok()
            .map(|caller| (caller, Source::Cookie))),
    }
}

/// When an impersonating login came through the session cookie, that session's token is kept in
/// a second cookie for switching back, since the session cookie now names the new session.
fn keep_original(state: &RestState, headers: &HeaderMap, original: Option<&(Caller, Source)>) -> Vec<String> {
    match (original, credentials::cookie(headers, &state.cookies.name)) {
        // The session it names ends by its own rules: the cookie needs no lifetime of its own.
        (Some((_, Source::Cookie)), Some(token)) => {
            vec![state.cookies.set_cookie(&state.cookies.original_name(), token, None)]
        }
        _ => Vec::new(),
    }
}

fn details(user: &UserView, tenant: &TenantRef, is_force_change_password: bool) -> LoginDetails {
    let profile = &user.profile;
    LoginDetails {
        user_id: user.user_id.to_string(),
        email: profile.email.clone(),
        user_name: user.user_name.clone(),
        first_name: profile.first_name.clone(),
        is_force_change_password,
        last_name: profile.last_name.clone(),
        organization_name: tenant.name.clone(),
        organization_id: tenant.tenant_id.to_string(),
        time_zone: profile.time_zone.clone(),
        employee_number: profile.employee_number.clone(),
        user_locale: profile.locale.clone(),
        user_date_format: profile.date_format.clone(),
        ..LoginDetails::default()
    }
}

fn logged_in(state: &RestState, outcome: LoginOutcome, cookies: Vec<String>) -> Response {
    let details = details(&outcome.user, &outcome.tenant, outcome.is_force_change_password);
    session_answer(state, details, Some(outcome.token.expose()), &outcome.session, cookies)
}

/// A login-shaped answer for `session`; with its token, the session cookie is set to it.
fn session_answer(
    state: &RestState,
    mut details: LoginDetails,
    token: Option<&str>,
    session: &SessionView,
    mut cookies: Vec<String>,
) -> Response {
    if let Some(token) = token {
        let lifetime = (session.expire_time - session.create_time).to_std().unwrap_or_default();
        cookies.push(state.cookies.set_cookie(&state.cookies.name, token, Some(lifetime)));
        details.session_id = token.to_owned();
        details.cookie_string = format!("{}={token}", state.cookies.name);
    }
    xml_ok(
        &LoginReply {
            login: details,
            message: Message::success(),
        },
        cookies,
    )
}

fn xml_ok<T: serde::Serialize>(reply: &T, cookies: Vec<String>) -> Response {
    let mut response = (StatusCode::OK, [(CONTENT_TYPE, "application/xml")], xml::write(reply)).into_response();
    for cookie in cookies {
        if let Ok(value) = http::HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    // Answers may carry a session token: no cache may keep them.
    response
        .headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}
