//! Code generation: the `SessionValue` impl and the registration.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{ext::IdentExt, GenericParam, Generics};

use crate::{ast::Input, runtime};

/// The `SessionValue` impl and the registration of a valid `input`.
pub(crate) fn impl_session_value(input: &Input<'_>) -> TokenStream {
    let krate = match &input.attrs.krate {
        Some((_, path)) => path.to_token_stream(),
        None => runtime::path(),
    };
    let ident = input.ident;
    let base = match &input.attrs.name {
        Some(name) => name.to_token_stream(),
        None => {
            let name = ident.unraw().to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #name))
        }
    };
    let generics = with_session_value_bounds(input.generics, &krate);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let sensitive = input.attrs.sensitive.then(|| {
        quote!(
            const SENSITIVE: bool = true;
        )
    });

    if !input.is_generic() {
        return quote! {
            #[automatically_derived]
            impl #krate::SessionValue for #ident {
                #sensitive
                fn session_type_name() -> ::std::borrow::Cow<'static, str> {
                    ::std::borrow::Cow::Borrowed(#base)
                }

                // A clone when the type is `Clone`, none otherwise (see `CloneProbe`).
                fn copy_value(&self) -> ::core::option::Option<Self> {
                    #[allow(unused_imports)]
                    use #krate::__private::{CopyByClone as _, NoCopy as _};
                    (&#krate::__private::CloneProbe(self)).copy_value()
                }
            }

            #krate::__private::inventory::submit! {
                #krate::__private::Registration::of::<#ident>()
            }
        };
    }
    // A generic type is not registered; its base name is, so that the dynamic view still
    // redacts `Base<...>`.
    let sensitive_name = input.attrs.sensitive.then(|| {
        quote! {
            #krate::__private::inventory::submit! {
                #krate::registry::SensitiveName::new(#base)
            }
        }
    });

    // A generic type's name composes its parameters' names, like `Vec<u32>`; it is not
    // registered, as a registration needs one concrete type.
    let params: Vec<TokenStream> = input
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => {
                let ty = &param.ident;
                Some(quote! {
                    ::std::borrow::Cow::into_owned(
                        <#ty as #krate::SessionValue>::session_type_name()
                    )
                })
            }
            GenericParam::Const(param) => {
                let value = &param.ident;
                Some(quote!(::std::string::ToString::to_string(&#value)))
            }
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let count = params.len();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::SessionValue for #ident #ty_generics #where_clause {
            #sensitive
            fn session_type_name() -> ::std::borrow::Cow<'static, str> {
                let params: [::std::string::String; #count] = [#(#params),*];
                ::std::borrow::Cow::Owned(::std::format!("{}<{}>", #base, params.join(", ")))
            }
        }

        #sensitive_name
    }
}

/// `generics` with `T: SessionValue` added for every type parameter `T`: its name is part of
/// the type's name, and a value of it must be storable.
pub(crate) fn with_session_value_bounds(generics: &Generics, krate: &TokenStream) -> Generics {
    let mut generics = generics.clone();
    let params: Vec<_> = generics
        .type_params()
        .map(|param| param.ident.clone())
        .collect();
    let where_clause = generics.make_where_clause();
    for param in params {
        where_clause
            .predicates
            .push(syn::parse_quote!(#param: #krate::SessionValue));
    }
    generics
}
