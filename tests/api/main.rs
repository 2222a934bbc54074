//! HTTP-level tests, one binary: each test builds the service in-process
//! (`Application::build` on port 0, a fresh database) and drives it over real
//! HTTP (see `helpers`). One module per area of the service.

#[path = "../common/mod.rs"]
mod common;
mod helpers;

mod admin;
mod adobe_sign;
mod agreements_list;
mod boldsign;
mod changes;
mod connections;
mod deliveries;
mod document_changes;
mod documents;
mod fusesign;
mod http;
mod polling_clients;
mod provider_limits;
mod providers_api;
mod reconcile;
mod refresh;
mod trust;
mod watch;
mod webhook_oauth;
mod worker;
