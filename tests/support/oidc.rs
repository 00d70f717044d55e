//! Starts the oidc-provider test OpenID Provider for tests. (being written)
