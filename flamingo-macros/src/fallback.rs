//! What is emitted when the input has a mistake: the error, plus a minimal impl so that code
//! using the type as a session value does not add errors of its own.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Data, DeriveInput};

use crate::{attr, expand::with_session_value_bounds, runtime};

/// The `compile_error!` for `error`, and a `SessionValue` impl whose name is never used
/// (the program does not compile). Unions and borrowing types get no impl: one could not be
/// written, and the error says why.
pub(crate) fn expand(node: &DeriveInput, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    if matches!(node.data, Data::Union(_)) || node.generics.lifetimes().next().is_some() {
        return error;
    }
    let krate = match attr::get(&node.attrs) {
        Ok(attr::Attrs {
            krate: Some((_, path)),
            ..
        }) => path.to_token_stream(),
        _ => runtime::path(),
    };
    let ident = &node.ident;
    let generics = with_session_value_bounds(&node.generics, &krate);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #error

        #[automatically_derived]
        impl #impl_generics #krate::SessionValue for #ident #ty_generics #where_clause {
            fn session_type_name() -> ::std::borrow::Cow<'static, str> {
                ::core::unreachable!("a type with a `#[derive(SessionValue)]` error is never built")
            }
        }
    }
}
