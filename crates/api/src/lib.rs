//! HTTP API: status, Prometheus metrics, the dashboard page.
