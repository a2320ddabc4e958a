//! Emits `impl Optimistic`: a description of the model in diesel types. The
//! behaviour it enables lives in occ-runtime.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, Path};

use crate::ast::{Field, Input};
use crate::check;
use crate::ctxt::Ctxt;

pub fn derive(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::default();
    let parsed = Input::from_syn(&mut cx, input);
    let roles = parsed
        .as_ref()
        .and_then(|parsed| check::roles(&mut cx, parsed));
    match (cx.check(), &parsed, roles) {
        (Ok(()), Some(parsed), Some(roles)) => expand(parsed, &roles),
        (Err(error), ..) => fallback(input, parsed.as_ref(), error),
        _ => unreachable!("a rejected input reports an error"),
    }
}

/// The errors, and impls of the traits that stand in for the real ones, as
/// thiserror's fallback does: without them every method call on the model
/// would add an error of its own to the one mistake. The impl's types are the
/// first error itself (`compile_error!` in type position), so rustc reports
/// nothing else about them.
fn fallback(input: &DeriveInput, parsed: Option<&Input<'_>>, error: syn::Error) -> TokenStream {
    let mut errors = error.into_iter();
    let first = errors
        .next()
        .expect("at least one error")
        .into_compile_error();
    let rest = errors.map(syn::Error::into_compile_error);
    let krate = parsed
        .and_then(|p| p.attrs.crate_path.clone())
        .unwrap_or_else(|| syn::parse_quote!(::occ));
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let unreachable = quote!(::core::unreachable!(
        "#[derive(Optimistic)] reported an error"
    ));
    quote! {
        #[allow(unused_qualifications)]
        const _: () = {
            use #krate::__private as __occ;
            type __OccInvalid = [(); #first];
            #(#rest)*
            #[automatically_derived]
            impl #impl_generics __occ::Optimistic for #ident #ty_generics #where_clause {
                type Table = __OccInvalid;
                type Key = __OccInvalid;
                type Version = __OccInvalid;
                type VersionColumn = __OccInvalid;
                type KeyPredicate = __OccInvalid;
                type VersionPredicate = __OccInvalid;
                type Changeset = __OccInvalid;
                type KeyValues = __OccInvalid;
                type WritableValues = __OccInvalid;
                const TABLE_NAME: &'static str = "";
                const VERSION_GENERATED: bool = false;
                const KEY_COLUMNS: &'static [&'static str] = &[];
                const WRITABLE_COLUMNS: &'static [&'static str] = &[];
                fn key(&self) -> Self::Key { #unreachable }
                fn version(&self) -> &Self::Version { #unreachable }
                fn set_version(&mut self, _: Self::Version) { #unreachable }
                fn key_predicate(_: Self::Key) -> Self::KeyPredicate { #unreachable }
                fn version_predicate(_: Self::Version) -> Self::VersionPredicate { #unreachable }
                fn changeset(&self) -> Self::Changeset { #unreachable }
                fn key_values(&self) -> Self::KeyValues { #unreachable }
                fn writable_values(&self) -> Self::WritableValues { #unreachable }
                fn describe_key(_: &Self::Key) -> ::std::string::String { #unreachable }
            }
            #[automatically_derived]
            impl #impl_generics __occ::ChangedFields for #ident #ty_generics #where_clause {
                fn changed_fields(&self, _: &Self) -> ::std::vec::Vec<&'static str> { #unreachable }
            }
        };
    }
}

fn expand(input: &Input<'_>, roles: &check::Roles<'_, '_>) -> TokenStream {
    let krate = input
        .attrs
        .crate_path
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::occ));
    // One alias at the top of the expansion instead of the full path at every
    // use (serde_derive's `wrap_in_const`).
    let private = quote!(__occ);
    let diesel = quote!(#private::diesel);
    let table = table_path(input);
    let table_name = table_path_name(&table);
    let column = |field: &Field<'_>| {
        let col = field.column();
        quote_spanned!(col.span()=> #table::#col)
    };

    let mut bounds = Bounds {
        diesel: &diesel,
        table: &table,
        type_params: input
            .original
            .generics
            .type_params()
            .map(|p| p.ident.clone())
            .collect(),
        sql_types: Vec::new(),
        predicates: Vec::new(),
    };
    let mut key_sql_types = Vec::new();
    for field in &roles.keys {
        let traits = vec![quote!(::core::clone::Clone), quote!(::core::fmt::Debug)];
        key_sql_types.push(bounds.field(field.ty, &column(field), false, traits));
    }
    let mut writable_sql_types = Vec::new();
    for field in &roles.writable {
        let traits = vec![quote!(::core::clone::Clone)];
        writable_sql_types.push(bounds.field(
            field_value_type(field),
            &column(field),
            true,
            traits,
        ));
    }
    let version = roles.version;
    bounds.field(
        version.ty,
        &column(version),
        false,
        vec![quote!(#private::Version)],
    );

    let ident = &input.original.ident;
    let mut generics = input.original.generics.clone();
    generics.params.extend(
        bounds.sql_types.iter().map(|t| -> syn::GenericParam {
            syn::parse_quote!(#t: #diesel::sql_types::SingleValue)
        }),
    );
    generics
        .make_where_clause()
        .predicates
        .extend(bounds.predicates);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let (_, ty_generics, _) = input.original.generics.split_for_impl();

    // Key: the field's type, or a tuple of them; its predicate `a = ? AND b = ?`.
    let key_vars: Vec<Ident> = (0..roles.keys.len())
        .map(|i| local(&format!("__occ_key{i}")))
        .collect();
    let key_tys: Vec<&syn::Type> = roles.keys.iter().map(|f| f.ty).collect();
    let key_idents: Vec<&Ident> = roles.keys.iter().map(|f| f.ident).collect();
    let key_names: Vec<String> = roles
        .keys
        .iter()
        .map(|f| f.column().unraw().to_string())
        .collect();
    let key_eq_tys: Vec<TokenStream> = roles
        .keys
        .iter()
        .map(|f| {
            let (col, ty) = (column(f), f.ty);
            quote!(#diesel::dsl::Eq<#col, #ty>)
        })
        .collect();
    let key_eqs: Vec<TokenStream> = roles
        .keys
        .iter()
        .zip(&key_vars)
        .map(|(f, var)| {
            let col = column(f);
            quote!(#diesel::ExpressionMethods::eq(#col, #var))
        })
        .collect();
    let (key_ty, key_value, key_pattern) = if roles.keys.len() == 1 {
        let (ty, field, var) = (key_tys[0], key_idents[0], &key_vars[0]);
        (
            quote!(#ty),
            quote!(::core::clone::Clone::clone(&self.#field)),
            quote!(#var),
        )
    } else {
        (
            quote!((#(#key_tys,)*)),
            quote!((#(::core::clone::Clone::clone(&self.#key_idents),)*)),
            quote!((#(#key_vars,)*)),
        )
    };
    let mut key_predicate_ty = key_eq_tys[0].clone();
    let mut key_predicate = key_eqs[0].clone();
    for (ty, eq) in key_eq_tys.iter().zip(&key_eqs).skip(1) {
        key_predicate_ty = quote!(#diesel::dsl::And<#key_predicate_ty, #ty>);
        key_predicate = quote!(#diesel::BoolExpressionMethods::and(#key_predicate, #eq));
    }

    // Bindings are prefixed: a unit struct or const of the same name in the
    // user's module would turn a binding into a pattern (even at mixed-site).
    let (key_arg, version_arg) = (local("__occ_key"), local("__occ_version"));
    let version_field = roles.version.ident;
    let generated = roles.version.attrs.generated.is_some();
    let version_ty = roles.version.ty;
    let version_col = column(roles.version);
    let version_eq_ty = quote!(#diesel::dsl::Eq<#version_col, #version_ty>);

    let (changeset_ty, changeset) = if roles.writable.is_empty() {
        (quote!(()), quote!(()))
    } else {
        let tys = roles.writable.iter().map(|f| {
            let (col, ty) = (column(f), field_value_type(f));
            quote!(#diesel::dsl::Eq<#col, #ty>)
        });
        let values = roles.writable.iter().map(|f| {
            let (col, name) = (column(f), f.ident);
            let value = match &f.attrs.serialize_as {
                Some(ty) => quote_spanned!(ty.span()=>
                    <#ty as ::core::convert::From<_>>::from(::core::clone::Clone::clone(&self.#name))),
                None => quote_spanned!(f.ty.span()=> ::core::clone::Clone::clone(&self.#name)),
            };
            quote!(#diesel::ExpressionMethods::eq(#col, #value))
        });
        (
            quote!(<(#(#tys,)*) as #diesel::query_builder::AsChangeset>::Changeset),
            quote!(#diesel::query_builder::AsChangeset::as_changeset((#(#values,)*))),
        )
    };

    // The bind values of a batch row: the key's, then the writable fields',
    // each as its column's SQL type.
    let as_expression = |ty: &syn::Type, sql_type: &TokenStream, value: TokenStream| {
        (
            quote!(#diesel::dsl::AsExprOf<#ty, #sql_type>),
            quote!(<#ty as #diesel::expression::AsExpression<#sql_type>>::as_expression(#value)),
        )
    };
    let (key_value_tys, key_values): (Vec<_>, Vec<_>) = roles
        .keys
        .iter()
        .zip(&key_sql_types)
        .map(|(f, st)| {
            let name = f.ident;
            as_expression(f.ty, st, quote!(::core::clone::Clone::clone(&self.#name)))
        })
        .unzip();
    let (writable_value_tys, writable_values): (Vec<_>, Vec<_>) = roles
        .writable
        .iter()
        .zip(&writable_sql_types)
        .map(|(f, st)| {
            let name = f.ident;
            let value = match &f.attrs.serialize_as {
                Some(ty) => quote_spanned!(ty.span()=>
                    <#ty as ::core::convert::From<_>>::from(::core::clone::Clone::clone(&self.#name))),
                None => quote!(::core::clone::Clone::clone(&self.#name)),
            };
            as_expression(field_value_type(f), st, value)
        })
        .unzip();
    let key_columns: Vec<TokenStream> = roles.keys.iter().map(|f| column(f)).collect();
    let writable_columns: Vec<TokenStream> = roles.writable.iter().map(|f| column(f)).collect();

    // `changed_fields`: every field compared. Its impl is bounded on the
    // fields being `PartialEq` under a `for<'__occ>` binder, which keeps
    // rustc from rejecting a model whose fields are not (the impl then
    // does not apply) instead of failing the whole derive.
    let field_idents: Vec<&Ident> = input.fields.iter().map(|f| f.ident).collect();
    let field_names: Vec<String> = field_idents.iter().map(|i| i.unraw().to_string()).collect();
    let field_tys: Vec<&syn::Type> = input.fields.iter().map(|f| f.ty).collect();
    let (_, _, plain_where) = input.original.generics.split_for_impl();
    let plain_predicates = plain_where.map(|w| {
        let p = &w.predicates;
        quote!(#p,)
    });
    let (plain_impl_generics, _, _) = input.original.generics.split_for_impl();

    quote! {
        // Paths are spelled out in full so that no user import can change them,
        // which `unused_qualifications` flags where the name is also in scope.
        #[allow(unused_qualifications)]
        const _: () = {
            use #krate::__private as __occ;
            #[automatically_derived]
            impl #impl_generics #private::Optimistic for #ident #ty_generics #where_clause {
                type Table = #table::table;
                type Key = #key_ty;
                type Version = #version_ty;
                type VersionColumn = #version_col;
                type KeyPredicate = #key_predicate_ty;
                type VersionPredicate = #version_eq_ty;
                type Changeset = #changeset_ty;
                type KeyValues = (#(#key_value_tys,)*);
                type WritableValues = (#(#writable_value_tys,)*);

                const TABLE_NAME: &'static str = #table_name;
                const VERSION_GENERATED: bool = #generated;
                const KEY_COLUMNS: &'static [&'static str] =
                    &[#(<#key_columns as #diesel::query_source::Column>::NAME,)*];
                const WRITABLE_COLUMNS: &'static [&'static str] =
                    &[#(<#writable_columns as #diesel::query_source::Column>::NAME,)*];

                fn key(&self) -> Self::Key {
                    #key_value
                }

                fn version(&self) -> &Self::Version {
                    &self.#version_field
                }

                fn set_version(&mut self, #version_arg: Self::Version) {
                    self.#version_field = #version_arg;
                }

                fn key_predicate(#key_arg: Self::Key) -> Self::KeyPredicate {
                    let #key_pattern = #key_arg;
                    #key_predicate
                }

                fn version_predicate(#version_arg: Self::Version) -> Self::VersionPredicate {
                    #diesel::ExpressionMethods::eq(#version_col, #version_arg)
                }

                fn changeset(&self) -> Self::Changeset {
                    #changeset
                }

                fn key_values(&self) -> Self::KeyValues {
                    (#(#key_values,)*)
                }

                fn writable_values(&self) -> Self::WritableValues {
                    (#(#writable_values,)*)
                }

                fn describe_key(#key_arg: &Self::Key) -> ::std::string::String {
                    let #key_pattern = #key_arg;
                    #private::describe_key(&[#((#key_names, #key_vars as &dyn ::core::fmt::Debug),)*])
                }
            }

            #[automatically_derived]
            impl #plain_impl_generics #private::ChangedFields for #ident #ty_generics
            where
                #plain_predicates
                #(for<'__occ> #field_tys: ::core::cmp::PartialEq,)*
            {
                fn changed_fields(&self, __occ_other: &Self) -> ::std::vec::Vec<&'static str> {
                    let mut __occ_changed = ::std::vec::Vec::new();
                    #(
                        if self.#field_idents != __occ_other.#field_idents {
                            __occ_changed.push(#field_names);
                        }
                    )*
                    __occ_changed
                }
            }
        };
    }
}

/// The where clauses on the field types, and the impl parameters they need.
///
/// Each is spanned at the field so a type that does not fit its column is
/// reported there. For a concrete type they are trivially true, but rustc still
/// checks them. A type that only borrows gets no `AsExpression` bound: a where
/// clause naming a lifetime would shadow diesel's impls and keep its
/// `Expression` from normalizing.
///
/// A type naming a type parameter also needs the `AsChangeset` of its
/// assignment, which names `<T as AsExpression<ST>>::Expression`. rustc
/// normalizes where clauses against the clauses as written, so `ST` must be a
/// parameter of the impl (`__OccSqlTypeN`, fixed by `col: Expression<SqlType =
/// __OccSqlTypeN>`) rather than `<col as Expression>::SqlType`, which would be
/// normalized to the concrete type and no longer match the clause.
struct Bounds<'a> {
    diesel: &'a TokenStream,
    table: &'a Path,
    type_params: Vec<Ident>,
    sql_types: Vec<Ident>,
    predicates: Vec<syn::WherePredicate>,
}

impl Bounds<'_> {
    /// `ty: traits + AsExpression<column's SQL type>`, as the type allows;
    /// returns how the impl names the column's SQL type.
    fn field(
        &mut self,
        ty: &syn::Type,
        col: &TokenStream,
        assigned: bool,
        mut traits: Vec<TokenStream>,
    ) -> TokenStream {
        let (diesel, table, span) = (self.diesel, self.table, ty.span());
        let column_sql_type = quote!(<#col as #diesel::expression::Expression>::SqlType);
        let sql_type_name = match mentions(ty, &self.type_params) {
            Mentions::Nothing => {
                traits.push(quote!(#diesel::expression::AsExpression<#column_sql_type>));
                column_sql_type
            }
            Mentions::Lifetime => column_sql_type,
            Mentions::TypeParam => {
                let sql_type = Ident::new(
                    &format!("__OccSqlType{}", self.sql_types.len()),
                    Span::call_site(),
                );
                self.push(
                    span,
                    quote!(#col: #diesel::expression::Expression<SqlType = #sql_type>),
                );
                traits.push(quote!(#diesel::expression::AsExpression<#sql_type>));
                if assigned {
                    self.push(
                        span,
                        quote!(#diesel::dsl::Eq<#col, #ty>:
                        #diesel::query_builder::AsChangeset<Target = #table::table>),
                    );
                }
                self.sql_types.push(sql_type.clone());
                quote!(#sql_type)
            }
        };
        // The field's own type keeps its spans.
        let traits = respan(quote!(: #(#traits)+*), span);
        self.predicates.push(syn::parse_quote!(#ty #traits));
        sql_type_name
    }

    fn push(&mut self, span: Span, predicate: TokenStream) {
        let predicate = respan(predicate, span);
        self.predicates.push(syn::parse_quote!(#predicate));
    }
}

/// Gives every token of a bound the span of the field's type, so an unmet bound
/// (an unsupported version type, a value that does not fit its column) is
/// reported at the user's field rather than at the derive. The paths are
/// absolute or the user's own (`products::qty`), which resolve at the field as
/// they do at the derive.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// An identifier for a binding of the generated code.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mentions {
    Nothing,
    /// A lifetime other than `'static`, and no type parameter.
    Lifetime,
    TypeParam,
}

/// Which of the struct's generic parameters a field's type names.
fn mentions(ty: &syn::Type, type_params: &[Ident]) -> Mentions {
    fn scan(tokens: TokenStream, type_params: &[Ident], found: &mut Mentions) {
        let mut after_quote = false;
        for tt in tokens {
            match &tt {
                TokenTree::Group(group) => scan(group.stream(), type_params, found),
                TokenTree::Ident(ident) => {
                    if after_quote && ident != "static" && *found == Mentions::Nothing {
                        *found = Mentions::Lifetime;
                    } else if !after_quote && type_params.contains(ident) {
                        *found = Mentions::TypeParam;
                    }
                }
                _ => {}
            }
            after_quote = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '\'');
        }
    }
    let mut found = Mentions::Nothing;
    scan(ty.to_token_stream(), type_params, &mut found);
    found
}

/// The type a field is written as: its own, or `serialize_as`.
fn field_value_type<'a>(field: &'a Field<'_>) -> &'a syn::Type {
    field.attrs.serialize_as.as_ref().unwrap_or(field.ty)
}

/// `#[diesel(table_name = ...)]`, or diesel's inference: the struct's name in
/// snake_case plus `s`.
fn table_path(input: &Input<'_>) -> Path {
    if let Some(path) = &input.attrs.table_name {
        return path.clone();
    }
    let name = input.original.ident.unraw().to_string();
    let mut snake = String::with_capacity(name.len() + 1);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.extend(ch.to_lowercase());
    }
    snake.push('s');
    Ident::new(&snake, Span::call_site()).into()
}

fn table_path_name(path: &Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.unraw().to_string())
        .unwrap_or_default()
}
