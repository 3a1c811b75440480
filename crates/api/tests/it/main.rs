//! Integration tests: a real server on 127.0.0.1, queried over a socket.

mod browser;
mod ledger;
mod openai;
mod routes;
mod support;
