pub mod app;
pub mod calls;
pub mod db;
pub mod postgres;
#[cfg(feature = "rest")]
pub mod rest;
