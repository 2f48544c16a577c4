//! A headless browser for the test OpenID Provider's development pages: follows its redirects by
//! hand (so that it stops at the redirect URI, which is never contacted), keeps its cookies, and
//! fills in the login and consent forms it meets.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

/// What the provider sent the browser back to the redirect URI with.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: String,
    pub state: String,
    /// RFC 9207's `iss`, when sent.
    pub iss: String,
}

pub struct Browser {
    http: reqwest::Client,
}

impl Browser {
    pub fn new() -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Browser { http }
    }

    /// Goes to `authorization_url`, signs in as `account` and consents, and answers what the
    /// provider sent to `redirect_uri`.
    pub async fn sign_in(&self, authorization_url: &str, account: &str, redirect_uri: &str) -> Callback {
        let mut url = reqwest::Url::parse(authorization_url).expect("an authorization URL");
        let mut response = self.http.get(url.clone()).send().await.expect("the provider answers");
        for _ in 0..20 {
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .expect("a redirect with a Location")
                    .to_owned();
                let next = url.join(&location).expect("a Location URL");
                if next.as_str().starts_with(redirect_uri) {
                    return callback(&next);
                }
                url = next;
                response = self.http.get(url.clone()).send().await.expect("the provider answers");
                continue;
            }
            let status = response.status();
            let page = response.text().await.expect("a page");
            assert_eq!(status, StatusCode::OK, "the provider answered {status}: {page}");
            let form = Form::parse(&page).unwrap_or_else(|| panic!("a page without a form: {page}"));
            let mut fields = form.fields;
            if fields.iter().any(|(k, v)| k == "prompt" && v == "login") {
                fields.push(("login".into(), account.into()));
                fields.push(("password".into(), "any password".into()));
            }
            url = url.join(&form.action).expect("a form action");
            response = self
                .http
                .post(url.clone())
                .form(&fields)
                .send()
                .await
                .expect("the provider answers");
        }
        panic!("the provider never sent the browser back to {redirect_uri}");
    }
}

fn callback(url: &reqwest::Url) -> Callback {
    let mut back = Callback::default();
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "code" => back.code = value.into_owned(),
            "state" => back.state = value.into_owned(),
            "iss" => back.iss = value.into_owned(),
            "error" => panic!("the provider answered an error: {url}"),
            _ => {}
        }
    }
    back
}

/// The first form of a page: its action and hidden fields.
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

impl Form {
    fn parse(page: &str) -> Option<Form> {
        let start = page.find("<form")?;
        let form = &page[start..start + page[start..].find("</form>")?];
        let action = attribute(&form[..form.find('>')?], "action")?;
        let mut fields = Vec::new();
        let mut rest = form;
        while let Some(at) = rest.find("<input") {
            let tag = &rest[at..at + rest[at..].find('>')?];
            if attribute(tag, "type").as_deref() == Some("hidden")
                && let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value"))
            {
                fields.push((name, value));
            }
            rest = &rest[at + tag.len()..];
        }
        Some(Form {
            action: unescape(&action),
            fields,
        })
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}
