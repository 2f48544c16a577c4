pub mod app;
pub mod db;
pub mod postgres;
