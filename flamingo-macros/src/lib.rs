//! `#[derive(SessionValue)]` (being written).
use proc_macro::TokenStream;

/// Derives `flamingo_session::SessionValue`.
#[proc_macro_derive(SessionValue, attributes(session_value))]
pub fn derive_session_value(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
