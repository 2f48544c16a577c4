pub mod app;
pub mod postgres;
