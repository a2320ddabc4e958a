//! `#[occ(...)]`, parsed strictly, and `#[diesel(...)]`, read leniently: diesel's
//! own derives report its mistakes, occ only takes what it needs from it.

use proc_macro2::{Ident, TokenTree};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Attribute, LitStr, Path, Type};

use crate::ctxt::Ctxt;

const CONTAINER_KEYS: &str =
    "occ accepts on the struct: `crate = \"...\"`; on a field: `version`, `generated`, `skip_update`";
const FIELD_KEYS: &str =
    "occ accepts on a field: `version`, `generated`, `skip_update`; on the struct: `crate = \"...\"`";

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
    /// `#[occ(version, generated)]`: the database sets the version.
    pub generated: Option<Ident>,
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
    let mut seen = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("occ") {
            let parsed = attr.parse_nested_meta(|meta| {
                // #[occ(crate = "path::to::occ")]
                if meta.path.is_ident("crate") {
                    let lit: LitStr = meta.value()?.parse()?;
                    let path = lit.parse::<Path>()?;
                    if first_time(cx, &mut seen, &meta.path) {
                        out.crate_path = Some(path);
                    }
                    Ok(())
                } else if meta.path.is_ident("version")
                    || meta.path.is_ident("generated")
                    || meta.path.is_ident("skip_update")
                {
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
                    // syn refuses an empty list, which would leave the key
                    // unset and fall back to `id`: an empty list is no key.
                    let list: proc_macro2::Group = meta.input.fork().parse()?;
                    if list.stream().is_empty() {
                        meta.input.parse::<proc_macro2::Group>()?;
                    } else {
                        meta.parse_nested_meta(|key| {
                            keys.push(key.path.require_ident()?.clone());
                            Ok(())
                        })?;
                    }
                    if keys.is_empty() {
                        cx.error(
                            &meta.path,
                            "#[diesel(primary_key())] names no field, so occ cannot tell which row it is",
                            "name the key fields, #[diesel(primary_key(field, ...))], or remove the attribute to use the field `id`",
                        );
                    } else {
                        out.primary_key = Some(keys);
                    }
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
    let mut seen = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("occ") {
            let parsed = attr.parse_nested_meta(|meta| {
                // #[occ(version)]
                if meta.path.is_ident("version") {
                    let ident = meta.path.require_ident()?.clone();
                    if first_time(cx, &mut seen, &meta.path) {
                        out.version = Some(ident);
                    }
                // #[occ(version, generated)]
                } else if meta.path.is_ident("generated") {
                    let ident = meta.path.require_ident()?.clone();
                    if first_time(cx, &mut seen, &meta.path) {
                        out.generated = Some(ident);
                    }
                // #[occ(skip_update)]
                } else if meta.path.is_ident("skip_update") {
                    let ident = meta.path.require_ident()?.clone();
                    if first_time(cx, &mut seen, &meta.path) {
                        out.skip_update = Some(ident);
                    }
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

/// Records an occ key of one struct or field; a key written twice is reported
/// at both places, since either one may be the one to delete.
fn first_time(cx: &mut Ctxt, seen: &mut Vec<Path>, at: &Path) -> bool {
    let name = path_name(at);
    match seen.iter().find(|p| path_name(p) == name) {
        Some(first) => {
            let help = format!("remove one of the two #[occ({name})]");
            cx.error(first, format!("`{name}` is given twice: first here"), &help);
            cx.error(at, format!("`{name}` is given twice: again here"), &help);
            false
        }
        None => {
            seen.push(at.clone());
            true
        }
    }
}

fn unknown_key(cx: &mut Ctxt, meta: &ParseNestedMeta<'_>, valid: &str) -> syn::Result<()> {
    let name = path_name(&meta.path);
    // occ reads these from diesel's own attribute so they are written once.
    let diesel = match name.as_str() {
        "table" | "table_name" => Some("table_name = ..."),
        "primary_key" | "key" | "id" => Some("primary_key(...)"),
        "column" | "column_name" | "rename" => Some("column_name = ..."),
        "serialize_as" => Some("serialize_as = ..."),
        _ => None,
    };
    match diesel {
        Some(diesel) => cx.error(
            &meta.path,
            format!("unknown occ attribute `{name}`: occ reads this from diesel's own attribute"),
            format!("write #[diesel({diesel})] instead"),
        ),
        None => cx.error(&meta.path, format!("unknown occ attribute `{name}`"), valid),
    }
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
