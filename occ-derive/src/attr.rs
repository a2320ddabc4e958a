//! `#[occ(...)]`, parsed strictly, and `#[diesel(...)]`, read leniently: diesel's
//! own derives report its mistakes, occ only takes what it needs from it.

use proc_macro2::{Ident, TokenTree};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Attribute, LitStr, Path, Type};

use crate::ctxt::Ctxt;

const CONTAINER_KEYS: &str = "crate";
const FIELD_KEYS: &str = "version, skip_update";

/// What the struct's attributes say.
#[derive(Default)]
pub struct Container {
    /// `#[diesel(table_name = path)]`
    pub table_name: Option<Path>,
    /// `#[diesel(primary_key(a, b))]`
    pub primary_key: Option<Vec<Ident>>,
    /// `#[occ(crate = "path")]`
    pub crate_path: Option<Path>,
}

/// What a field's attributes say.
#[derive(Default)]
pub struct Field {
    /// `#[occ(version)]`, by the span of `version`.
    pub version: Option<Ident>,
    /// `#[occ(skip_update)]` or diesel's own `#[diesel(skip_update)]`.
    pub skip_update: Option<Ident>,
    /// `#[diesel(column_name = name)]`
    pub column_name: Option<Ident>,
    /// `#[diesel(embed)]`
    pub embed: Option<Ident>,
    /// `#[diesel(select_expression = ...)]`: a computed value, not a column.
    pub select_expression: Option<Ident>,
    /// `#[diesel(serialize_as = Type)]`
    pub serialize_as: Option<Type>,
}

pub fn container(cx: &mut Ctxt, attrs: &[Attribute]) -> Container {
    let mut out = Container::default();
    for attr in attrs {
        if attr.path().is_ident("occ") {
            let parsed = attr.parse_nested_meta(|meta| {
                // #[occ(crate = "path::to::occ")]
                if meta.path.is_ident("crate") {
                    let lit: LitStr = meta.value()?.parse()?;
                    let path = lit.parse::<Path>()?;
                    set_once(cx, &mut out.crate_path, path, &meta.path);
                    Ok(())
                } else if meta.path.is_ident("version") || meta.path.is_ident("skip_update") {
                    cx.error(
                        &meta.path,
                        format!(
                            "`{}` belongs on a field, not on the struct",
                            path_name(&meta.path)
                        ),
                        format!(
                            "move #[occ({})] to the field it describes",
                            path_name(&meta.path)
                        ),
                    );
                    skip_value(meta.input)
                } else {
                    unknown_key(cx, &meta, CONTAINER_KEYS)
                }
            });
            if let Err(err) = parsed {
                cx.push(err);
            }
        } else if attr.path().is_ident("diesel") {
            // Malformed diesel attributes are diesel's to report.
            let _ = attr.parse_nested_meta(|meta| {
                // #[diesel(table_name = path)]
                if meta.path.is_ident("table_name") {
                    out.table_name = Some(meta.value()?.parse()?);
                // #[diesel(primary_key(a, b, ...))]
                } else if meta.path.is_ident("primary_key") {
                    let mut keys = Vec::new();
                    meta.parse_nested_meta(|key| {
                        keys.push(key.path.require_ident()?.clone());
                        Ok(())
                    })?;
                    out.primary_key = Some(keys);
                } else {
                    skip_value(meta.input)?;
                }
                Ok(())
            });
        }
    }
    out
}

pub fn field(cx: &mut Ctxt, attrs: &[Attribute]) -> Field {
    let mut out = Field::default();
    for attr in attrs {
        if attr.path().is_ident("occ") {
            let parsed = attr.parse_nested_meta(|meta| {
                // #[occ(version)]
                if meta.path.is_ident("version") {
                    let ident = meta.path.require_ident()?.clone();
                    set_once(cx, &mut out.version, ident, &meta.path);
                // #[occ(skip_update)]
                } else if meta.path.is_ident("skip_update") {
                    let ident = meta.path.require_ident()?.clone();
                    set_once(cx, &mut out.skip_update, ident, &meta.path);
                } else if meta.path.is_ident("crate") {
                    cx.error(
                        &meta.path,
                        "`crate` belongs on the struct, not on a field",
                        "move #[occ(crate = \"...\")] above the struct",
                    );
                    skip_value(meta.input)?;
                } else {
                    unknown_key(cx, &meta, FIELD_KEYS)?;
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.push(err);
            }
        } else if attr.path().is_ident("diesel") {
            let _ = attr.parse_nested_meta(|meta| {
                let ident = meta.path.get_ident().cloned();
                match ident.as_ref().map(|i| i.unraw().to_string()).as_deref() {
                    // #[diesel(column_name = name)] or #[diesel(column_name = "name")]
                    Some("column_name") => out.column_name = Some(column_ident(meta.value()?)?),
                    // #[diesel(skip_update)]
                    Some("skip_update") => out.skip_update = ident,
                    // #[diesel(embed)]
                    Some("embed") => out.embed = ident,
                    // #[diesel(serialize_as = Type)]
                    Some("serialize_as") => out.serialize_as = Some(meta.value()?.parse()?),
                    // #[diesel(select_expression = expr)]
                    Some("select_expression") => {
                        out.select_expression = ident;
                        skip_value(meta.input)?;
                    }
                    _ => skip_value(meta.input)?,
                }
                Ok(())
            });
        }
    }
    out
}

/// diesel accepts an identifier or a string; a string names a column whose
/// Rust identifier is the raw form (`"type"` is `r#type`).
fn column_ident(input: ParseStream<'_>) -> syn::Result<Ident> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        let name = lit.value();
        syn::parse_str::<Ident>(&name)
            .or_else(|_| syn::parse_str::<Ident>(&format!("r#{name}")))
            .map(|mut ident| {
                ident.set_span(lit.span());
                ident
            })
            .map_err(|_| syn::Error::new(lit.span(), "expected a column identifier"))
    } else {
        Ident::parse_any(input)
    }
}

fn set_once<T>(cx: &mut Ctxt, slot: &mut Option<T>, value: T, at: &Path) {
    if slot.is_some() {
        cx.error(
            at,
            format!("duplicate #[occ({})]", path_name(at)),
            "write each occ attribute once",
        );
    } else {
        *slot = Some(value);
    }
}

fn unknown_key(cx: &mut Ctxt, meta: &ParseNestedMeta<'_>, valid: &str) -> syn::Result<()> {
    cx.error(
        &meta.path,
        format!("unknown occ attribute `{}`", path_name(&meta.path)),
        format!("the occ attributes here are: {valid}"),
    );
    skip_value(meta.input)
}

/// Steps over `= value` or `(...)` up to the next top-level comma, so one
/// unknown key does not hide the rest of the attribute.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt {
                if p.as_char() == ',' {
                    return Ok(((), rest));
                }
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

fn path_name(path: &Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}
