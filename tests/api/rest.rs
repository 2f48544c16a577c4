//! The REST layer through a real HTTP client: the AgileApps XML resources as the AgileApps
//! `BaseClient` uses them (cookie string from `Set-Cookie`), the same with `sessionId` as a bearer
//! token, JSON for the gRPC calls, hostile and malformed bodies, cross-site requests, and the
//! OpenAPI document.

use identityd::grpc::pb;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{ADMIN_PASSWORD, ADMIN_TENANT, ADMIN_USER, TestApp, TestEnv};
use crate::support::calls::cheap_hashing;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        the_base_client_flow_with_the_cookie_string,
        session_id_is_a_bearer_token,
        the_same_flow_in_json,
        json_errors_carry_the_grpc_details,
        proxy_login_and_switch_back_with_cookies,
        customer_support_login,
        a_forced_password_change_over_xml,
        errors_have_stable_codes_reasons_and_statuses,
        hostile_and_malformed_xml_is_refused,
        missing_and_garbage_credentials,
        cookie_changes_need_more_than_a_cross_site_form_can_send,
        the_openapi_document_lists_every_call_and_validates,
        the_jwks_is_served_over_http_and_verifies_a_login_jwt,
    ]
}

const PASSWORD: &str = "a password for the rest layer";
const XML: &str = "application/xml";

/// An HTTP client of one server.
struct Rest {
    base: String,
    http: Client,
}

impl Rest {
    fn new(app: &TestApp) -> Self {
        Self {
            base: format!("http://{}", app.addr),
            http: Client::new(),
        }
    }

    async fn post_xml(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, XML)
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST")
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self.http.get(format!("{}{path}", self.base)).header("accept", XML);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("GET")
    }

    async fn json(&self, call: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}/json/{call}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = request.send().await.expect("POST JSON");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer: {text}")),
        )
    }

    async fn login(&self, user_name: &str, password: &str) -> Login {
        let response = self
            .post_xml("/networking/rest/login", &login_xml(user_name, password), &[])
            .await;
        Login::from(response).await
    }
}

fn login_xml(user_name: &str, password: &str) -> String {
    format!("<platform><login><userName>{user_name}</userName><password>{password}</password></login></platform>")
}

/// A login-shaped answer.
struct Login {
    status: StatusCode,
    body: String,
    /// The `Set-Cookie` headers joined with "; ", as the BaseClient makes its cookie string.
    cookie_string: String,
    set_cookies: Vec<String>,
}

impl Login {
    async fn from(response: Response) -> Self {
        let status = response.status();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = response.text().await.expect("body");
        Self {
            status,
            body,
            cookie_string: set_cookies.join("; "),
            set_cookies,
        }
    }

    fn field(&self, name: &str) -> String {
        field(&self.body, name)
    }
}

/// The text of the first `<name>` element (the answers are flat enough for this).
fn field(body: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let Some(start) = body.find(&open) else {
        if body.contains(&format!("<{name}/>")) {
            return String::new();
        }
        panic!("no <{name}> in {body}");
    };
    let rest = &body[start + open.len()..];
    rest[..rest.find("</").expect("a closing tag")].to_owned()
}

async fn text(response: Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.expect("body"))
}

/// Asserts an AgileApps error: HTTP status, `<code>` and `<reason>`.
fn assert_xml_error((status, body): &(StatusCode, String), want: StatusCode, code: &str, reason: &str) {
    assert_eq!(*status, want, "{body}");
    assert_eq!(field(body, "code"), code, "{body}");
    assert_eq!(field(body, "reason"), reason, "{body}");
}

async fn is_valid(rest: &Rest, headers: &[(&str, &str)]) -> bool {
    let (status, body) = text(rest.get("/networking/rest/user/isSessionValid", headers).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    field(&body, "is_session_valid") == "true"
}

/// The AgileApps BaseClient: XML login, the cookie string from `Set-Cookie`, isSessionValid, user/info
/// and logout, all with that cookie string.
async fn the_base_client_flow_with_the_cookie_string(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let login = rest.login(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert!(
        login
            .body
            .contains("<message><code>0</code><description>Success</description></message>")
    );
    assert_eq!(login.field("userName"), ADMIN_USER);
    assert_eq!(login.field("userId"), app.admin_user_id);
    assert_eq!(login.field("organizationId"), app.admin_tenant_id);
    assert_eq!(login.field("organizationName"), ADMIN_TENANT);
    assert_eq!(login.field("isForceChangePassword"), "false");
    for name in [
        "email",
        "firstName",
        "lastName",
        "timeZone",
        "employeeNumber",
        "userLocale",
        "userDateFormat",
    ] {
        login.field(name);
    }
    let token = login.field("sessionId");
    assert!(app.validate(&token).await.valid, "sessionId is the session token");
    assert_eq!(login.set_cookies.len(), 1, "{:?}", login.set_cookies);
    let set_cookie = &login.set_cookies[0];
    assert!(
        set_cookie.starts_with(&format!("identityd_session={token};")),
        "{set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP here: {set_cookie}");
    assert_eq!(login.field("cookieString"), format!("identityd_session={token}"));

    let cookie = [("cookie", login.cookie_string.as_str())];
    assert!(is_valid(&rest, &cookie).await);
    let (status, info) = text(rest.get("/networking/rest/user/info", &cookie).await).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(field(&info, "userName"), ADMIN_USER);
    assert_eq!(field(&info, "organizationName"), ADMIN_TENANT);

    // The client logs out with its cookie; being a script, it says so with a content type.
    let logout = rest
        .get("/networking/rest/logout", &[cookie[0], ("content-type", XML)])
        .await;
    let clears: Vec<String> = logout
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let (status, body) = text(logout).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(field(&body, "code"), "0");
    assert!(
        clears
            .iter()
            .any(|c| c.starts_with("identityd_session=;") && c.contains("Max-Age=0")),
        "{clears:?}"
    );
    assert!(!is_valid(&rest, &cookie).await);
    assert!(!app.validate(&token).await.valid);
    app.finish().await;
}

/// AgileApps clients send the login's `sessionId` back as their credential: as a bearer token it
/// names the session as the cookie does, and a cookie-less client needs no CSRF header.
async fn session_id_is_a_bearer_token(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let token = rest.login(ADMIN_USER, ADMIN_PASSWORD).await.field("sessionId");
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    assert!(is_valid(&rest, &auth).await);
    let (status, info) = text(rest.get("/networking/rest/user/info", &auth).await).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(field(&info, "userId"), app.admin_user_id);
    let (status, body) = text(rest.get("/networking/rest/logout", &auth).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!is_valid(&rest, &auth).await);
    // A bearer token wins over a cookie, so that a stale cookie cannot hide a valid bearer.
    let token = rest.login(ADMIN_USER, ADMIN_PASSWORD).await.field("sessionId");
    let bearer = format!("Bearer {token}");
    assert!(
        is_valid(
            &rest,
            &[("authorization", &bearer), ("cookie", "identityd_session=stale")]
        )
        .await
    );
    app.finish().await;
}

/// Everything grpcurl does, with curl: Login, ValidateSession, GetCurrentUser and Logout in the
/// protobuf JSON mapping.
async fn the_same_flow_in_json(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let (status, login) = rest
        .json(
            "identity.v1.LoginService/Login",
            json!({ "userName": ADMIN_USER, "password": ADMIN_PASSWORD }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["sessionToken"].as_str().expect("sessionToken").to_owned();
    assert_eq!(login["user"]["userName"], ADMIN_USER);
    assert_eq!(login["session"]["kind"], "SESSION_KIND_PASSWORD");

    let (status, valid) = rest
        .json(
            "identity.v1.SessionService/ValidateSession",
            json!({ "sessionToken": token }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{valid}");
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["userId"], app.admin_user_id.as_str());
    assert!(
        valid["expireTime"].as_str().unwrap().ends_with('Z'),
        "a Timestamp in RFC 3339: {valid}"
    );

    let (status, me) = rest
        .json("identity.v1.SessionService/GetCurrentUser", json!({}), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["organizationName"], ADMIN_TENANT);

    // The session cookie works as the bearer does (JSON cannot come from a cross-site form).
    let cookie = format!("identityd_session={token}");
    let response = rest
        .http
        .post(format!("{}/json/identity.v1.SessionService/GetCurrentUser", rest.base))
        .header(CONTENT_TYPE, "application/json")
        .header("cookie", &cookie)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (status, out) = rest
        .json("identity.v1.LoginService/Logout", json!({}), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (_, valid) = rest
        .json(
            "identity.v1.SessionService/ValidateSession",
            json!({ "sessionToken": token }),
            None,
        )
        .await;
    assert_eq!(valid, json!({}), "an invalid session is the empty answer, as over gRPC");
    app.finish().await;
}

/// Errors are google.rpc.Status in JSON with the same details as over gRPC, and the JSON layer's
/// own refusals (bad JSON, wrong content type, unknown call, oversized body) come in that shape.
async fn json_errors_carry_the_grpc_details(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let reason = |body: &Value| body["details"][0]["reason"].as_str().unwrap_or_default().to_owned();

    let (status, body) = rest
        .json(
            "identity.v1.LoginService/Login",
            json!({ "userName": ADMIN_USER, "password": "wrong" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], 16);
    assert_eq!(body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(reason(&body), "INVALID_CREDENTIALS");

    let (status, body) = rest
        .json(
            "identity.v1.LoginService/Login",
            json!({ "userName": "", "password": "" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(reason(&body), "INVALID_ARGUMENT");
    let violations = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .expect("BadRequest details");
    assert!(violations["fieldViolations"].as_array().unwrap().len() >= 2, "{body}");

    let (status, body) = rest
        .json("identity.v1.SessionService/GetCurrentUser", json!({}), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(reason(&body), "MISSING_CREDENTIALS");

    let (status, body) = rest
        .json("identity.v1.LoginService/Login", json!({ "noSuchField": 1 }), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(reason(&body), "MALFORMED_JSON");

    let (status, body) = rest.json("identity.v1.LoginService/NoSuchCall", json!({}), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let post = |content_type: &'static str, body: String| {
        rest.http
            .post(format!("{}/json/identity.v1.LoginService/Login", rest.base))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let response = post("application/json", "{not json".to_owned()).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = post("application/x-www-form-urlencoded", "userName=a".to_owned())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{{\"userName\":\"{}\"}}", "a".repeat(app.config.max_request_bytes + 1));
    let response = post("application/json", big).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json_value().await;
    assert_eq!(reason(&body), "BODY_TOO_LARGE");
    app.finish().await;
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for Response {
    async fn json_value(self) -> Value {
        let text = self.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"))
    }
}

/// A proxy login made with the session cookie keeps that session in a second cookie, so that
/// switching back resumes it and hands its token back.
async fn proxy_login_and_switch_back_with_cookies(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let rest = Rest::new(&app);
    let colleague = app
        .create_user(&app.admin_tenant_id, "colleague@example.com", PASSWORD, &[])
        .await;
    let own = rest.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let own_token = own.field("sessionId");
    let body = format!(
        "<platform><login><userName>{ADMIN_USER}</userName><password>{ADMIN_PASSWORD}</password><proxy_user_id>{}</proxy_user_id></login></platform>",
        colleague.user_id
    );
    let proxy = Login::from(
        rest.post_xml(
            "/networking/rest/login/proxyLogin",
            &body,
            &[("cookie", &own.cookie_string)],
        )
        .await,
    )
    .await;
    assert_eq!(proxy.status, StatusCode::OK, "{}", proxy.body);
    assert_eq!(proxy.field("userId"), colleague.user_id);
    let proxy_token = proxy.field("sessionId");
    let validity = app.validate(&proxy_token).await;
    assert_eq!(validity.impersonator_user_id, app.admin_user_id);
    assert!(
        proxy
            .set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("identityd_session_original={own_token};"))),
        "{:?}",
        proxy.set_cookies
    );

    // The browser now holds both cookies.
    let cookies = format!("identityd_session={proxy_token}; identityd_session_original={own_token}");
    let (_, info) = text(rest.get("/networking/rest/user/info", &[("cookie", &cookies)]).await).await;
    assert_eq!(field(&info, "userName"), "colleague@example.com");
    let back = Login::from(
        rest.get(
            "/networking/rest/login/proxyLogin/switchBack",
            &[("cookie", &cookies), ("x-requested-with", "XMLHttpRequest")],
        )
        .await,
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(back.field("userId"), app.admin_user_id);
    assert_eq!(back.field("sessionId"), own_token, "the original session is resumed");
    assert!(
        back.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("identityd_session={own_token};")))
    );
    assert!(
        back.set_cookies
            .iter()
            .any(|c| c.starts_with("identityd_session_original=;"))
    );
    assert!(!app.validate(&proxy_token).await.valid);
    assert!(app.validate(&own_token).await.valid);

    // A bearer client switching back without an original session gets a fresh one.
    let proxy_token = Login::from(rest.post_xml("/networking/rest/login/proxyLogin", &body, &[]).await)
        .await
        .field("sessionId");
    let bearer = format!("Bearer {proxy_token}");
    let back = Login::from(
        rest.get(
            "/networking/rest/login/proxyLogin/switchBack",
            &[("authorization", &bearer)],
        )
        .await,
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let fresh = back.field("sessionId");
    assert!(!fresh.is_empty() && fresh != own_token);
    assert_eq!(app.validate(&fresh).await.user_id, app.admin_user_id);
    app.finish().await;
}

/// A customer-support login lands in the client tenant as its administrator.
async fn customer_support_login(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let rest = Rest::new(&app);
    let client = app.create_tenant("Client").await.tenant_id;
    let home = pb::Tenant {
        tenant_id: app.admin_tenant_id.clone(),
        served_tenant_ids: vec![client.clone()],
        ..Default::default()
    };
    app.update_tenant(&app.admin_token, home, &["served_tenant_ids"])
        .await
        .expect("serve the client tenant");
    let support = app
        .create_user(
            &app.admin_tenant_id,
            "support@example.com",
            PASSWORD,
            &[pb::Role::CustomerSupport],
        )
        .await;
    let body = |tenant: &str| {
        format!(
            "<platform><login><userName>{}</userName><password>{PASSWORD}</password><client_tenant_id>{tenant}</client_tenant_id></login></platform>",
            support.user_name
        )
    };
    let login = Login::from(
        rest.post_xml("/networking/rest/login/customerSupport", &body(&client), &[])
            .await,
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.field("organizationId"), client);
    assert_eq!(login.field("organizationName"), "Client");
    let validity = app.validate(&login.field("sessionId")).await;
    assert_eq!(validity.tenant_id, client);
    assert_eq!(validity.impersonator_user_id, support.user_id);

    let unserved = app.create_tenant("Unserved").await.tenant_id;
    let refused = text(
        rest.post_xml("/networking/rest/login/customerSupport", &body(&unserved), &[])
            .await,
    )
    .await;
    assert_xml_error(&refused, StatusCode::FORBIDDEN, "1301", "PERMISSION_DENIED");
    app.finish().await;
}

/// A login with a password an administrator set answers `isForceChangePassword`; the client then
/// sends the password update, with the session, and the next login is a normal one.
async fn a_forced_password_change_over_xml(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let rest = Rest::new(&app);
    let user = app
        .create_user(&app.admin_tenant_id, "forced@example.com", PASSWORD, &[])
        .await;
    app.set_password(&app.admin_token, &user.user_id, "set by an administrator", true)
        .await
        .unwrap();
    let login = rest.login(&user.user_name, "set by an administrator").await;
    assert_eq!(login.field("isForceChangePassword"), "true");
    let cookie = [("cookie", login.cookie_string.as_str())];
    let (_, info) = text(rest.get("/networking/rest/user/info", &cookie).await).await;
    assert_eq!(field(&info, "isForceChangePassword"), "true");
    // Until then the session may do little else: a state conflict, 409 with the gRPC reason.
    let (status, refused) = rest
        .json(
            "identity.v1.AccessTokenService/CreateUserAccessToken",
            json!({ "userAccessTokenName": "too early" }),
            Some(&login.field("sessionId")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["details"][0]["reason"], "PASSWORD_CHANGE_REQUIRED");

    let update = format!(
        "<platform><user><userName>{}</userName><oldPassword>set by an administrator</oldPassword><newPassword>my very own new password</newPassword></user></platform>",
        user.user_name
    );
    let (status, body) = text(rest.post_xml("/networking/rest/user/password", &update, &cookie).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        is_valid(&rest, &cookie).await,
        "the session the change came with stays open"
    );
    let again = rest.login(&user.user_name, "my very own new password").await;
    assert_eq!(again.field("isForceChangePassword"), "false");
    app.finish().await;
}

/// Each core error comes back with the HTTP status, `<code>` and `<reason>` of its kind.
async fn errors_have_stable_codes_reasons_and_statuses(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |config| {
        cheap_hashing(config);
        config.password_login_failures = 3;
    })
    .await;
    let rest = Rest::new(&app);
    let plain = app
        .create_user(&app.admin_tenant_id, "plain@example.com", PASSWORD, &[])
        .await;

    let empty = text(rest.post_xml("/networking/rest/login", &login_xml("", ""), &[]).await).await;
    assert_xml_error(&empty, StatusCode::UNPROCESSABLE_ENTITY, "1001", "INVALID_ARGUMENT");

    // A proxy login by a user without the role.
    let body = format!(
        "<platform><login><userName>{}</userName><password>{PASSWORD}</password><proxy_user_id>{}</proxy_user_id></login></platform>",
        plain.user_name, app.admin_user_id
    );
    let denied = text(rest.post_xml("/networking/rest/login/proxyLogin", &body, &[]).await).await;
    assert_xml_error(&denied, StatusCode::FORBIDDEN, "1301", "PERMISSION_DENIED");

    // Switching back from a session that is nobody's impersonation.
    let token = rest.login(&plain.user_name, PASSWORD).await.field("sessionId");
    let bearer = format!("Bearer {token}");
    let (status, body) = text(
        rest.get(
            "/networking/rest/login/proxyLogin/switchBack",
            &[("authorization", &bearer)],
        )
        .await,
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(
        status.as_u16(),
        match field(&body, "reason").as_str() {
            "PERMISSION_DENIED" | "IMPERSONATION_NOT_ALLOWED" => 403,
            "FAILED_PRECONDITION" => 409,
            other => panic!("unexpected {other}"),
        }
    );

    let unknown = rest.get("/networking/rest/no/such/thing", &[]).await;
    assert_xml_error(&text(unknown).await, StatusCode::NOT_FOUND, "1807", "NO_SUCH_RESOURCE");

    let mut last = (StatusCode::OK, String::new());
    for _ in 0..4 {
        last = text(
            rest.post_xml("/networking/rest/login", &login_xml(&plain.user_name, "wrong"), &[])
                .await,
        )
        .await;
        if last.0 == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_xml_error(&last, StatusCode::UNAUTHORIZED, "1101", "INVALID_CREDENTIALS");
    }
    assert_xml_error(&last, StatusCode::TOO_MANY_REQUESTS, "1203", "TOO_MANY_FAILED_LOGINS");
    let limited = rest
        .post_xml("/networking/rest/login", &login_xml(&plain.user_name, "wrong"), &[])
        .await;
    assert!(limited.headers().contains_key("retry-after"));
    app.finish().await;
}

/// Malformed XML, a DOCTYPE (external entities, billion laughs), another root, oversized bodies
/// and the wrong content type are refused before any login is tried.
async fn hostile_and_malformed_xml_is_refused(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let login = "/networking/rest/login";
    let xxe = format!(
        r#"<?xml version="1.0"?><!DOCTYPE platform [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><platform><login><userName>&xxe;</userName><password>{ADMIN_PASSWORD}</password></login></platform>"#
    );
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"><!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;"><!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;"><!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;"><!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]><platform><login><userName>&lol9;</userName><password>x</password></login></platform>"#;
    for body in [xxe.as_str(), laughs] {
        let refused = text(rest.post_xml(login, body, &[]).await).await;
        assert_xml_error(&refused, StatusCode::BAD_REQUEST, "1802", "XML_DOCTYPE_REFUSED");
        assert!(!refused.1.contains("root:"), "no file content leaks");
    }
    let undeclared =
        format!("<platform><login><userName>&xxe;</userName><password>{ADMIN_PASSWORD}</password></login></platform>");
    for body in [
        "<platform><login><userName>a</userName>",
        "not xml at all",
        "<other><login><userName>a</userName><password>b</password></login></other>",
        undeclared.as_str(),
        "<platform><login><userName>a</userName><password>b</password></login></platform><platform/>",
    ] {
        let refused = text(rest.post_xml(login, body, &[]).await).await;
        assert_xml_error(&refused, StatusCode::BAD_REQUEST, "1801", "MALFORMED_XML");
    }
    let oversized = login_xml(&"a".repeat(app.config.max_request_bytes), "b");
    let refused = text(rest.post_xml(login, &oversized, &[]).await).await;
    assert_xml_error(&refused, StatusCode::PAYLOAD_TOO_LARGE, "1804", "BODY_TOO_LARGE");
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/json"] {
        let response = rest
            .http
            .post(format!("{}{login}", rest.base))
            .header(CONTENT_TYPE, content_type)
            .body(login_xml(ADMIN_USER, ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        let refused = text(response).await;
        assert_xml_error(
            &refused,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "1805",
            "UNSUPPORTED_CONTENT_TYPE",
        );
    }
    // text/xml is XML too.
    let response = rest
        .http
        .post(format!("{}{login}", rest.base))
        .header(CONTENT_TYPE, "text/xml; charset=utf-8")
        .body(login_xml(ADMIN_USER, ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.finish().await;
}

/// No credential, a garbage cookie and a malformed bearer header.
async fn missing_and_garbage_credentials(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let info = "/networking/rest/user/info";
    let none = text(rest.get(info, &[]).await).await;
    assert_xml_error(&none, StatusCode::UNAUTHORIZED, "1102", "MISSING_CREDENTIALS");
    for cookie in [
        "identityd_session=garbage",
        "identityd_session=",
        "other=1; identityd_session=%00%ff",
    ] {
        let answer = text(rest.get(info, &[("cookie", cookie)]).await).await;
        let want = if cookie == "identityd_session=" {
            ("1102", "MISSING_CREDENTIALS")
        } else {
            ("1104", "SESSION_INVALID")
        };
        assert_xml_error(&answer, StatusCode::UNAUTHORIZED, want.0, want.1);
        assert!(!is_valid(&rest, &[("cookie", cookie)]).await);
    }
    assert!(!is_valid(&rest, &[]).await);
    let malformed = text(rest.get(info, &[("authorization", "Basic YTpi")]).await).await;
    assert_xml_error(&malformed, StatusCode::UNAUTHORIZED, "1102", "MISSING_CREDENTIALS");
    app.finish().await;
}

/// A cross-site form (or link) can send the cookie but neither a custom header nor a non-simple
/// content type: logout and switch-back made with the cookie alone are refused.
async fn cookie_changes_need_more_than_a_cross_site_form_can_send(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let login = rest.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let token = login.field("sessionId");
    let cookie = ("cookie", login.cookie_string.as_str());
    for (path, extra) in [
        ("/networking/rest/logout", None),
        (
            "/networking/rest/logout",
            Some(("content-type", "application/x-www-form-urlencoded")),
        ),
        ("/networking/rest/logout", Some(("content-type", "text/plain"))),
        ("/networking/rest/login/proxyLogin/switchBack", None),
    ] {
        let mut headers = vec![cookie];
        headers.extend(extra);
        let refused = text(rest.get(path, &headers).await).await;
        assert_xml_error(&refused, StatusCode::FORBIDDEN, "1806", "CROSS_SITE_REQUEST");
    }
    let form = rest
        .http
        .post(format!("{}/networking/rest/logout", rest.base))
        .header("cookie", cookie.1)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    assert!(
        app.validate(&token).await.valid,
        "the session survived every cross-site attempt"
    );
    let (status, body) = text(
        rest.get(
            "/networking/rest/logout",
            &[cookie, ("x-requested-with", "XMLHttpRequest")],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!app.validate(&token).await.valid);
    app.finish().await;
}

/// `/openapi.json` has a path for every RPC of the contract and passes openapi-spec-validator.
async fn the_openapi_document_lists_every_call_and_validates(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let response = rest
        .http
        .get(format!("{}/openapi.json", rest.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document = response.json_value().await;
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/json/identity.v1.LoginService/Login",
        "/json/identity.v1.LoginService/ProxyLogin",
        "/json/identity.v1.SessionService/ValidateSession",
        "/json/identity.v1.AccessTokenService/CreateUserAccessToken",
        "/json/identity.v1.AdminService/CreateUser",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let rpcs: usize = identityd::grpc::SERVICE_NAMES
        .iter()
        .map(|service| crate::support::rest::rpcs_of(service))
        .sum();
    assert_eq!(paths.len(), rpcs, "one path per RPC");
    crate::support::rest::validate_openapi(&document.to_string());
    app.finish().await;
}

/// A verifier that knows only the URL: it fetches `/.well-known/jwks.json` and checks a login's
/// session JWT with a generic JOSE library.
async fn the_jwks_is_served_over_http_and_verifies_a_login_jwt(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let rest = Rest::new(&app);
    let (status, login) = rest
        .json(
            "identity.v1.LoginService/Login",
            json!({ "userName": ADMIN_USER, "password": ADMIN_PASSWORD }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let jwt = login["sessionJwt"].as_str().expect("sessionJwt");
    let (_, keys) = rest.json("identity.v1.SessionService/GetJwks", json!({}), None).await;

    let response = rest
        .http
        .get(format!("{}/.well-known/jwks.json", rest.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/jwk-set+json");
    let cache = response.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.contains("max-age="), "{cache}");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&response.text().await.unwrap()).expect("a JWK Set");
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.expect("a kid");
    let jwk = set.find(&kid).expect("the signing key is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[keys["issuer"].as_str().unwrap()]);
    validation.set_audience(&[keys["audience"].as_str().unwrap()]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("the JWT verifies with the served keys")
        .claims;
    assert_eq!(claims["sub"], app.admin_user_id.as_str());
    assert_eq!(claims["sid"], login["session"]["sessionId"]);
    app.finish().await;
}
