pub mod app;
pub mod calls;
pub mod db;
pub mod oidc_browser;
pub mod oidc_provider;
pub mod postgres;
#[cfg(feature = "rest")]
pub mod rest;
