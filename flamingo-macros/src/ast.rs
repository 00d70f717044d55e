//! The derive input, modelled as what the expansion needs.

use proc_macro2::Span;
use syn::{Attribute, Data, DeriveInput, Generics, Ident};

use crate::attr::{self, Attrs};

/// A type deriving `SessionValue`.
pub(crate) struct Input<'a> {
    /// The type's name.
    pub(crate) ident: &'a Ident,
    /// Its generic parameters and where clause.
    pub(crate) generics: &'a Generics,
    /// What kind of type it is.
    pub(crate) kind: Kind,
    /// Its `#[session_value(...)]` attributes.
    pub(crate) attrs: Attrs,
    /// `#[session_value]` attributes on fields or variants, where they mean nothing.
    pub(crate) misplaced: Vec<&'a Attribute>,
}

/// The shape of the type.
pub(crate) enum Kind {
    /// A struct (named, tuple or unit).
    Struct,
    /// An enum.
    Enum,
    /// A union, which cannot be a session value; the span is the `union` keyword.
    Union(Span),
}

impl<'a> Input<'a> {
    /// Models `node`, parsing its attributes.
    ///
    /// # Errors
    ///
    /// When a `#[session_value(...)]` attribute on the type is malformed.
    pub(crate) fn from_syn(node: &'a DeriveInput) -> syn::Result<Self> {
        let attrs = attr::get(&node.attrs)?;
        let (kind, fields): (Kind, Vec<&'a syn::Field>) = match &node.data {
            Data::Struct(data) => (Kind::Struct, data.fields.iter().collect()),
            Data::Enum(data) => (
                Kind::Enum,
                data.variants
                    .iter()
                    .flat_map(|variant| &variant.fields)
                    .collect(),
            ),
            Data::Union(data) => (
                Kind::Union(data.union_token.span),
                data.fields.named.iter().collect(),
            ),
        };
        let variant_attrs = match &node.data {
            Data::Enum(data) => data
                .variants
                .iter()
                .flat_map(|variant| &variant.attrs)
                .collect(),
            _ => Vec::new(),
        };
        let inner_attrs = fields
            .iter()
            .flat_map(|field| &field.attrs)
            .chain(variant_attrs);
        Ok(Input {
            ident: &node.ident,
            generics: &node.generics,
            kind,
            attrs,
            misplaced: inner_attrs.filter(|attr| attr::is_ours(attr)).collect(),
        })
    }

    /// Whether the type has type or const parameters, and so a composed name and no
    /// registration.
    pub(crate) fn is_generic(&self) -> bool {
        self.generics.type_params().next().is_some()
            || self.generics.const_params().next().is_some()
    }
}
