//! The first tenant and administrator, created on a first start: from the bootstrap settings when
//! they are given, or, on the zero-setup embedded store, with a generated password printed once.

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::core::{BootstrapRequest, Identity};

/// Creates the first tenant and administrator on a first start: from the bootstrap variables when
/// they are set; on the zero-setup embedded store, with a generated password.
pub(crate) async fn create_at_first_start(identity: &Identity, config: &Config) -> anyhow::Result<()> {
    let Some(request) = request_from_config(config)? else {
        if config.database_url.is_none() {
            create_with_generated_password(identity, config).await?;
        }
        return Ok(());
    };
    if identity
        .bootstrap(&request)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?
    {
        tracing::info!(tenant = %request.tenant_name, user = %request.user_name, "created the first tenant and administrator");
    }
    Ok(())
}

/// Creates the first administrator with a generated password if the database has no tenant,
/// and prints the credentials once, to standard output rather than to the logs.
async fn create_with_generated_password(identity: &Identity, config: &Config) -> anyhow::Result<()> {
    let password = crate::auth::generate_password();
    let request = BootstrapRequest {
        tenant_name: "Default".into(),
        user_name: "admin".into(),
        password: password.clone(),
        email: String::new(),
    };
    if identity
        .bootstrap(&request)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?
    {
        println!(
            "identityd: created the first tenant \"Default\" and its administrator \"admin\" with the password {password}\n\
             identityd: it is shown only this once. Log in with:\n  \
             grpcurl -plaintext -d '{{\"user_name\": \"admin\", \"password\": \"{password}\"}}' {} identity.v1.LoginService/Login",
            config.listen
        );
    }
    Ok(())
}

fn request_from_config(config: &Config) -> anyhow::Result<Option<BootstrapRequest>> {
    match (
        &config.bootstrap_tenant,
        &config.bootstrap_user,
        &config.bootstrap_password,
    ) {
        (None, None, None) => Ok(None),
        (Some(tenant), Some(user), Some(password)) => Ok(Some(BootstrapRequest {
            tenant_name: tenant.clone(),
            user_name: user.clone(),
            password: password.expose_secret().to_owned(),
            email: String::new(),
        })),
        _ => anyhow::bail!(
            "to bootstrap, set all of IDENTITYD_BOOTSTRAP_TENANT, IDENTITYD_BOOTSTRAP_USER and IDENTITYD_BOOTSTRAP_PASSWORD"
        ),
    }
}
