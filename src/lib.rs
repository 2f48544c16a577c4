//! identityd: an identity microservice that logs people and machines in, keeps their sessions, and
//! issues and checks their credentials, served over gRPC.
//!
//! The arrows point one way: [`grpc`] translates the wire contract into calls on [`core`]; [`core`]
//! holds the use cases and depends only on [`domain`], [`auth`] and the [`store::Store`] trait; each
//! storage backend implements that trait. With the `rest` feature, `rest` translates the
//! AgileApps XML resources and JSON into the same core calls. Nothing depends on [`grpc`] but
//! `rest`, which hands its JSON calls to the gRPC services in process.

/// The admin listener: Prometheus metrics and HTTP health probes on an address of its own.
pub mod admin_http;
/// Secrets: password hashing on a bounded pool, session-token minting and hashing.
pub mod auth;
/// Wall-clock time, injectable so that expiry rules can be tested without waiting.
pub mod clock;
/// Configuration: one struct filled from flags and environment variables.
pub mod config;
/// The use cases: login, logout, session validation, administration, audit. No transport here.
pub mod core;
/// Newtypes that parse input into values the core can trust, and the rules that need no I/O.
pub mod domain;
/// The first tenant and administrator at a first start: from the bootstrap settings, or with a
/// generated password printed once.
mod first_admin;
/// The gRPC layer: generated code, services that translate to core calls, error mapping.
pub mod grpc;
/// Memory the allocator holds free, given back to the operating system when the server goes idle.
pub mod memory;
/// The REST translation layer: AgileApps XML session resources, JSON for every gRPC call, and the
/// OpenAPI document of the JSON routes; served on the gRPC port.
#[cfg(feature = "rest")]
pub mod rest;
/// The one place where the store, the core, the gRPC services, health, reflection and shutdown are wired.
pub mod startup;
/// The `Store` trait, its records and errors, and one module per backend.
pub mod store;
/// The tracing subscriber (with optional OpenTelemetry export) and the metrics the service records.
pub mod telemetry;
/// TLS and mutual TLS for the gRPC listener, with a certificate read again when its files change.
pub mod tls;
