//! Checks across attributes and fields, and the roles they give each field.

use proc_macro2::Ident;
use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type};

use crate::ast::{Field, Input};
use crate::ctxt::Ctxt;

/// The fields by their role in a versioned write.
pub struct Roles<'i, 'a> {
    /// In the order of `primary_key(...)`.
    pub keys: Vec<&'i Field<'a>>,
    pub version: &'i Field<'a>,
    /// Written by a full versioned update.
    pub writable: Vec<&'i Field<'a>>,
}

pub fn roles<'i, 'a>(cx: &mut Ctxt, input: &'i Input<'a>) -> Option<Roles<'i, 'a>> {
    let versions: Vec<&Field<'a>> = input
        .fields
        .iter()
        .filter(|f| f.attrs.version.is_some())
        .collect();
    // Two version columns would leave the other one unchecked: point at each so
    // the user sees both candidates.
    if versions.len() > 1 {
        let names = versions
            .iter()
            .map(|f| format!("`{}`", f.ident))
            .collect::<Vec<_>>()
            .join(", ");
        for field in &versions {
            cx.error(
                field.attrs.version.as_ref(),
                format!("#[occ(version)] is on more than one field: {names}"),
                "a model has exactly one version column: keep #[occ(version)] on one field",
            );
        }
    }
    let Some(version) = versions.first().copied() else {
        // A field named `version` is the likely culprit: point at it.
        let problem = format!(
            "`{}` has no field marked #[occ(version)]",
            input.original.ident
        );
        match input.fields.iter().find(|f| f.ident == "version") {
            Some(field) => cx.error(
                field.ident,
                problem,
                format!("if `{}` holds the row's version, put #[occ(version)] above it", field.ident),
            ),
            None => cx.error(
                &input.original.ident,
                problem,
                "mark the field that holds the row's version with #[occ(version)] (an integer, timestamp or UUID column)",
            ),
        }
        return None;
    };
    check_version_type(cx, version);
    for field in &input.fields {
        if let (Some(generated), None) = (&field.attrs.generated, &field.attrs.version) {
            cx.error(
                generated,
                format!("`generated` is on `{}`, which is not the version", field.ident),
                "`generated` says the database sets the version: write #[occ(version, generated)] on the version field",
            );
        }
    }

    let keys = key_fields(cx, input);
    for key in &keys {
        if key.ident == version.ident {
            cx.error(
                version.attrs.version.as_ref(),
                format!("`{}` is both the primary key and the version", key.ident),
                "the version must be a column of its own: add one (e.g. `version INTEGER NOT NULL DEFAULT 0`)",
            );
        }
        if let Some(skip) = &key.attrs.skip_update {
            cx.error(
                skip,
                format!(
                    "`{}` is a key field: versioned writes never update it anyway",
                    key.ident
                ),
                "remove skip_update from the key field",
            );
        }
    }
    if let Some(skip) = &version.attrs.skip_update {
        cx.error(
            skip,
            "the version field cannot skip updates: every versioned write moves it forward",
            "remove skip_update from the version field",
        );
    }

    let mut writable = Vec::new();
    for field in &input.fields {
        let is_key = keys.iter().any(|k| k.ident == field.ident);
        if is_key || field.ident == version.ident {
            continue;
        }
        if field.attrs.skip_update.is_some() || field.attrs.select_expression.is_some() {
            continue;
        }
        // Skipping it silently would drop its changes on every write.
        if let Some(embed) = &field.attrs.embed {
            cx.error(
                embed,
                format!("`{}` embeds another struct, whose columns occ cannot write", field.ident),
                "mark the field #[occ(skip_update)] and write the embedded columns with update_if_version",
            );
            continue;
        }
        writable.push(field);
    }
    Some(Roles {
        keys,
        version,
        writable,
    })
}

/// diesel's rule: `#[diesel(primary_key(...))]` names fields, and the key is
/// `id` when it is absent.
fn key_fields<'i, 'a>(cx: &mut Ctxt, input: &'i Input<'a>) -> Vec<&'i Field<'a>> {
    let find = |name: &Ident| input.fields.iter().find(|f| f.ident == name);
    match &input.attrs.primary_key {
        Some(names) => names
            .iter()
            .filter_map(|name| {
                let field = find(name);
                if field.is_none() {
                    let fields = input
                        .fields
                        .iter()
                        .map(|f| format!("`{}`", f.ident))
                        .collect::<Vec<_>>()
                        .join(", ");
                    cx.error(
                        name,
                        format!(
                            "primary_key names `{name}`, which is not a field of `{}`",
                            input.original.ident
                        ),
                        format!("name key fields by their field name; the fields are {fields}"),
                    );
                }
                field
            })
            .collect(),
        None => match find(&Ident::new("id", proc_macro2::Span::call_site())) {
            Some(field) => vec![field],
            None => {
                cx.error(
                    &input.original.ident,
                    format!("`{}` has no field `id` and no #[diesel(primary_key(...))], so occ cannot tell which row it is", input.original.ident),
                    "name the key fields above the struct: #[diesel(primary_key(field, ...))]",
                );
                Vec::new()
            }
        },
    }
}

/// Shapes that can never be a version column get a precise message here; any
/// other type that is not a version meets the `occ::Version` bound, whose
/// message lists the supported types.
fn check_version_type(cx: &mut Ctxt, field: &Field<'_>) {
    const CONTAINERS: &[&str] = &[
        "Vec", "VecDeque", "Box", "Rc", "Arc", "Cell", "RefCell", "HashMap", "BTreeMap", "HashSet",
        "BTreeSet",
    ];
    const HELP: &str = "use an integer (i16, i32, i64), a timestamp (chrono or time, with occ's feature of that name) or a uuid::Uuid column as the version";
    let name = field.ident;
    let (problem, help) = match field.ty {
        Type::Path(path) => match path.path.segments.last() {
            Some(last) if last.ident == "Option" => {
                let inner = match &last.arguments {
                    PathArguments::AngleBracketed(args) => args.args.to_token_stream().to_string().replace(" ", ""),
                    _ => "i32".to_owned(),
                };
                (
                    format!("the version field `{name}` is nullable: a NULL version never compares equal, so the row could never be written"),
                    format!("make the column NOT NULL (e.g. `version INTEGER NOT NULL DEFAULT 0`) and the field `{inner}`"),
                )
            }
            // Only std's containers: any other generic path may be a version
            // (`DateTime<Utc>`), and the `Version` bound judges it.
            Some(last) if CONTAINERS.iter().any(|c| last.ident == c) && matches!(&last.arguments, PathArguments::AngleBracketed(args) if args.args.iter().any(|a| matches!(a, GenericArgument::Type(_)))) => (
                format!("the version field `{name}` has a container type: a version is one scalar column"),
                HELP.to_owned(),
            ),
            _ => return,
        },
        Type::Group(_) | Type::Paren(_) | Type::Macro(_) | Type::Verbatim(_) => return,
        _ => (
            format!("the version field `{name}` has a compound type: a version is one scalar column"),
            HELP.to_owned(),
        ),
    };
    cx.error(field.ty, problem, help);
}
