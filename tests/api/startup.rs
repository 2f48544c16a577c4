use std::sync::Arc;

use identityd::clock::SystemClock;
use identityd::config::Config;
use identityd::core::{BootstrapRequest, RequestMeta};
use identityd::startup::{build_identity, open_store};

use crate::support::app::TestEnv;

/// Tests of how the store is chosen; they need no per-store run.
pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        unsupported_database_schemes_are_refused,
        an_in_memory_database_serves_logins
    ]
}

async fn unsupported_database_schemes_are_refused(_: TestEnv) {
    for url in [
        "mysql://root:secret@localhost/db",
        "file:identityd.db",
        "http://localhost",
    ] {
        let error = open_store(&Config::for_database(url)).await.err().expect("refused");
        let message = error.to_string();
        assert!(
            message.contains("postgres://") && message.contains("sqlite://"),
            "{message}"
        );
        assert!(
            !message.contains("secret"),
            "the URL's password is not repeated: {message}"
        );
    }
}

async fn an_in_memory_database_serves_logins(_: TestEnv) {
    let config = Config::for_database("sqlite::memory:");
    let store = open_store(&config).await.expect("open sqlite::memory:");
    let identity = build_identity(&config, store, Arc::new(SystemClock)).unwrap();
    let request = BootstrapRequest {
        tenant_name: "Memory".into(),
        user_name: "admin".into(),
        password: "a long enough password".into(),
        email: String::new(),
    };
    assert!(identity.bootstrap(&request).await.unwrap());
    let outcome = identity
        .login_with_password("admin", "a long enough password", &RequestMeta::default())
        .await
        .unwrap();
    let validity = identity
        .validate_session(outcome.token.expose())
        .await
        .unwrap()
        .expect("valid");
    let identityd::core::Principal::User { user_name, .. } = validity.principal else {
        panic!("a user's session: {validity:?}");
    };
    assert_eq!(user_name, "admin");
}
