//! Where the runtime crate is: the path generated code uses for `SessionValue` and the registry.

use proc_macro2::{Span, TokenStream};
use proc_macro_crate::{crate_name, FoundCrate};
use quote::quote;
use syn::Ident;

/// The runtime crate's package name.
const SESSION: &str = "flamingo-session";
/// The facade package, which re-exports the runtime crate as `flamingo::session`.
const FACADE: &str = "flamingo";

/// The absolute path of the runtime crate as the user's package sees it.
///
/// The user's `Cargo.toml` decides: a dependency on `flamingo-session` (under any name) gives
/// that crate; otherwise a dependency on the facade `flamingo` gives `<facade>::session`. When
/// neither is found (or the manifest cannot be read) the path is `::flamingo_session`, so the
/// compiler's error names the missing crate.
pub(crate) fn path() -> TokenStream {
    choose(crate_name(SESSION).ok(), || crate_name(FACADE).ok())
}

/// Picks the path from what was found in the manifest; the facade is only looked up when
/// needed.
fn choose(session: Option<FoundCrate>, facade: impl FnOnce() -> Option<FoundCrate>) -> TokenStream {
    match session {
        Some(found) => absolute(found, "flamingo_session"),
        None => match facade() {
            Some(found) => {
                let facade = absolute(found, "flamingo");
                quote!(#facade::session)
            }
            None => absolute(FoundCrate::Itself, "flamingo_session"),
        },
    }
}

/// `::name` for a dependency. Inside the crate itself (its doctests, tests and examples see
/// it under its own name) the path is `::own_name` as well, which the library resolves through
/// `extern crate self as own_name;`.
fn absolute(found: FoundCrate, own_name: &str) -> TokenStream {
    let name = match &found {
        FoundCrate::Itself => own_name,
        FoundCrate::Name(name) => name,
    };
    let ident = Ident::new(name, Span::call_site());
    quote!(::#ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(tokens: TokenStream) -> String {
        tokens.to_string().replace(' ', "")
    }

    #[test]
    fn a_session_dependency_wins_and_keeps_its_rename() {
        let facade_not_asked = || panic!("the facade is only looked up without flamingo-session");
        assert_eq!(
            shown(choose(
                Some(FoundCrate::Name("flamingo_session".into())),
                facade_not_asked
            )),
            "::flamingo_session"
        );
        assert_eq!(
            shown(choose(
                Some(FoundCrate::Name("sessions".into())),
                facade_not_asked
            )),
            "::sessions"
        );
        assert_eq!(
            shown(choose(Some(FoundCrate::Itself), facade_not_asked)),
            "::flamingo_session"
        );
    }

    #[test]
    fn the_facade_is_used_through_its_session_module() {
        assert_eq!(
            shown(choose(None, || Some(FoundCrate::Name("flamingo".into())))),
            "::flamingo::session"
        );
        assert_eq!(
            shown(choose(None, || Some(FoundCrate::Name("web".into())))),
            "::web::session"
        );
        assert_eq!(
            shown(choose(None, || Some(FoundCrate::Itself))),
            "::flamingo::session"
        );
    }

    #[test]
    fn without_either_the_path_names_the_runtime_crate() {
        assert_eq!(shown(choose(None, || None)), "::flamingo_session");
    }
}
