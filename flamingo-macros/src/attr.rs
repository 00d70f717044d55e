//! Parsing of the `#[session_value(...)]` attribute.
//!
//! Keys: `name = "..."` (the stable type name), `crate = "path"` (where the runtime crate
//! is, for re-exports) and the flag `sensitive` (the dynamic view redacts the values). Each key
//! may appear once, across all `#[session_value]` attributes of the type.

use syn::{meta::ParseNestedMeta, Attribute, LitStr, Path, Token};

/// The attribute's name, as written on the type.
pub(crate) const ATTR: &str = "session_value";

/// The keys `#[session_value(...)]` accepts, for error messages.
const KEYS: &str = "`name = \"...\"`, `crate = \"path\"` or `sensitive`";

/// What the `#[session_value(...)]` attributes on a type say.
#[derive(Default)]
pub(crate) struct Attrs {
    /// `name = "..."`: the stable type name, as written.
    pub(crate) name: Option<LitStr>,
    /// `crate = "path"`: the path of the runtime crate, as written and as parsed.
    pub(crate) krate: Option<(LitStr, Path)>,
    /// `sensitive`: values hold secrets and are redacted by the registry's dynamic view.
    pub(crate) sensitive: bool,
}

/// Whether `attr` is a `#[session_value ...]` attribute.
pub(crate) fn is_ours(attr: &Attribute) -> bool {
    attr.path().is_ident(ATTR)
}

/// Parses every `#[session_value(...)]` attribute in `attrs`.
///
/// Each malformed key is reported once; all reports are combined into one error.
pub(crate) fn get(attrs: &[Attribute]) -> syn::Result<Attrs> {
    let mut out = Attrs::default();
    let mut errors: Option<syn::Error> = None;
    for attr in attrs.iter().filter(|attr| is_ours(attr)) {
        if let Err(err) = parse_one(attr, &mut out) {
            push(&mut errors, err);
        }
    }
    match errors {
        Some(err) => Err(err),
        None => Ok(out),
    }
}

fn parse_one(attr: &Attribute, out: &mut Attrs) -> syn::Result<()> {
    if let syn::Meta::Path(path) = &attr.meta {
        return Err(syn::Error::new_spanned(
            path,
            format!("expected `#[{ATTR}(...)]` with {KEYS}"),
        ));
    }
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            let lit = string_value(&meta, "name", "\"my_app.Cart\"")?;
            if out.name.is_some() {
                return Err(duplicate(&meta, "name"));
            }
            out.name = Some(lit);
            Ok(())
        } else if meta.path.is_ident("crate") {
            let lit = string_value(&meta, "crate", "\"::flamingo::session\"")?;
            if out.krate.is_some() {
                return Err(duplicate(&meta, "crate"));
            }
            let path = lit.parse_with(Path::parse_mod_style).map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    format!(
                        "`crate` must be a path to the runtime crate, like \"::flamingo_session\"; \
                         got {:?}",
                        lit.value()
                    ),
                )
            })?;
            out.krate = Some((lit, path));
            Ok(())
        } else if meta.path.is_ident("sensitive") {
            if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                return Err(meta.error(
                    "`sensitive` is a flag and takes no value: write `#[session_value(sensitive)]`",
                ));
            }
            if out.sensitive {
                return Err(duplicate(&meta, "sensitive"));
            }
            out.sensitive = true;
            Ok(())
        } else {
            let key = meta.path.get_ident().map_or_else(
                || quote::ToTokens::to_token_stream(&meta.path).to_string(),
                ToString::to_string,
            );
            Err(meta.error(format!("unknown `{ATTR}` key `{key}`; expected {KEYS}")))
        }
    })
}

/// Reads the `= "..."` after `key`, with an error that shows the expected form.
fn string_value(meta: &ParseNestedMeta<'_>, key: &str, example: &str) -> syn::Result<LitStr> {
    let expected = || format!("expected `{key} = {example}`");
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!("{}: `{key}` needs a string value", expected())));
    }
    let value = meta.value()?;
    match value.parse::<syn::Lit>() {
        Ok(syn::Lit::Str(lit)) => Ok(lit),
        Ok(other) => Err(syn::Error::new(
            other.span(),
            format!("{}: the value must be a string literal", expected()),
        )),
        Err(err) => Err(syn::Error::new(
            err.span(),
            format!("{}: the value must be a string literal", expected()),
        )),
    }
}

fn duplicate(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Error {
    meta.error(format!("duplicate `{key}` in `#[{ATTR}]`: give it once"))
}

/// Adds `err` to the combined error in `errors`.
pub(crate) fn push(errors: &mut Option<syn::Error>, err: syn::Error) {
    match errors {
        Some(all) => all.combine(err),
        None => *errors = Some(err),
    }
}
