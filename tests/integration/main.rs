//! keyrouter's integration tests, in one binary so that the harness in [`common`] compiles once.
//! Each module is one area, most of them driving the real binary over HTTP on 127.0.0.1; run one
//! with `cargo test --test integration http::`, one test with its full name.
//!
//! Tests that need programs a machine with only Rust lacks (Chromium, kubectl, curl, node, npm, a
//! Python that can make virtual environments, PyPI, an IPv6 loopback, Prometheus) skip with a
//! `SKIPPED` line
//! when those are missing; `.ci/test` installs them and makes every test run.

mod common;

mod abuse;
mod beyond;
mod cli;
mod cli_props;
mod deploy;
mod diagnostics;
mod diff;
mod docs;
mod environment;
mod http;
mod ids_and_algorithms;
mod in_process;
mod independent;
mod js_client;
mod kubernetes;
mod large_catalog;
mod layout;
mod logs;
mod lookup_options;
mod memory;
mod openapi;
mod operations;
mod parser_props;
mod prometheus;
mod python_client;
mod readme;
mod reload;
mod reload_metrics;
mod repository;
mod status_page;
mod table_identity;
mod template;
mod watch;
mod weight_range;
