//! Checks that the input can be a session value, with errors that point at the cause.

use quote::ToTokens;
use syn::GenericParam;

use crate::{
    ast::{Input, Kind},
    attr::{push, ATTR},
};

impl Input<'_> {
    /// Checks the input; every problem found is reported, each once.
    ///
    /// # Errors
    ///
    /// A union, a lifetime parameter, an empty `name`, or `#[session_value]` on a field or
    /// variant.
    pub(crate) fn validate(&self) -> syn::Result<()> {
        let mut errors = None;
        if let Kind::Union(span) = self.kind {
            push(
                &mut errors,
                syn::Error::new(
                    span,
                    "`SessionValue` cannot be derived for a union: a session value is \
                     serialized with serde, which does not support unions; use a struct or an enum",
                ),
            );
        }
        for param in &self.generics.params {
            if let GenericParam::Lifetime(lifetime) = param {
                push(
                    &mut errors,
                    syn::Error::new_spanned(
                        &lifetime.lifetime,
                        format!(
                            "a session value must be owned ('static): `{}` borrows with `{}`, \
                             but a stored value outlives the request; use owned fields \
                             (`String` instead of `&str`, `Vec<T>` instead of `&[T]`)",
                            self.ident, lifetime.lifetime
                        ),
                    ),
                );
            }
        }
        if let Some(name) = &self.attrs.name {
            if name.value().trim().is_empty() {
                push(
                    &mut errors,
                    syn::Error::new(
                        name.span(),
                        "the session type name must not be empty or blank: it is stored with every value \
                         to tell types apart",
                    ),
                );
            }
        }
        for attr in &self.misplaced {
            push(
                &mut errors,
                syn::Error::new_spanned(
                    attr.to_token_stream(),
                    format!("`#[{ATTR}]` goes on the type, not on a field or variant"),
                ),
            );
        }
        match errors {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}
