//! Helpers that start the real services the end-to-end tests use. Each picks free loopback
//! ports, fails loudly (saying what to install) when a binary is missing, and stops what it
//! started when dropped.
#![allow(dead_code)]

pub mod browser;
pub mod demo;
pub mod oidc;
pub mod redis;
