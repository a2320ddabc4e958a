//! Emits `impl Optimistic`: a description of the model in diesel types. The
//! behaviour it enables lives in occ-runtime.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, Path};

use crate::ast::{Field, Input};
use crate::check;
use crate::ctxt::Ctxt;

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::default();
    let Some(parsed) = Input::from_syn(&mut cx, input) else {
        cx.check()?;
        unreachable!("a rejected input reports an error");
    };
    let roles = check::roles(&mut cx, &parsed);
    cx.check()?;
    let roles = roles.expect("roles without errors");
    Ok(expand(&parsed, &roles))
}

fn expand(input: &Input<'_>, roles: &check::Roles<'_, '_>) -> TokenStream {
    let krate = input
        .attrs
        .crate_path
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::occ));
    let private = quote!(#krate::__private);
    let diesel = quote!(#private::diesel);
    let table = table_path(input);
    let table_name = table_path_name(&table);
    let column = |field: &Field<'_>| {
        let col = field.column();
        quote_spanned!(col.span()=> #table::#col)
    };

    let ident = &input.original.ident;
    let mut generics = input.original.generics.clone();
    {
        // Bounds on the field types: trivially true for concrete types, and the
        // bounds a generic field needs. Spanned at the field so a type that does
        // not fit the column is reported there.
        let where_clause = generics.make_where_clause();
        for field in roles.keys.iter().chain(&roles.writable) {
            let ty = field_value_type(field);
            let col = column(field);
            where_clause
                .predicates
                .push(syn::parse_quote_spanned!(ty.span()=>
                    #ty: ::core::clone::Clone + #diesel::expression::AsExpression<
                        <#col as #diesel::expression::Expression>::SqlType>
                ));
        }
        for field in &roles.keys {
            let ty = field.ty;
            where_clause
                .predicates
                .push(syn::parse_quote_spanned!(ty.span()=> #ty: ::core::fmt::Debug));
        }
        let version_ty = roles.version.ty;
        where_clause
            .predicates
            .push(syn::parse_quote_spanned!(version_ty.span()=> #version_ty: #private::Version));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    // Key: the field's type, or a tuple of them; its predicate `a = ? AND b = ?`.
    let key_vars: Vec<Ident> = (0..roles.keys.len())
        .map(|i| format_ident!("__key{}", i))
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

    let version_field = roles.version.ident;
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

    quote! {
        #[allow(non_local_definitions, unused_qualifications, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::Optimistic for #ident #ty_generics #where_clause {
                type Table = #table::table;
                type Key = #key_ty;
                type Version = #version_ty;
                type VersionColumn = #version_col;
                type KeyPredicate = #key_predicate_ty;
                type VersionPredicate = #version_eq_ty;
                type VersionAssignment =
                    <#version_eq_ty as #diesel::query_builder::AsChangeset>::Changeset;
                type Changeset = #changeset_ty;

                const TABLE_NAME: &'static str = #table_name;

                fn key(&self) -> Self::Key {
                    #key_value
                }

                fn version(&self) -> &Self::Version {
                    &self.#version_field
                }

                fn set_version(&mut self, version: Self::Version) {
                    self.#version_field = version;
                }

                fn key_predicate(key: Self::Key) -> Self::KeyPredicate {
                    let #key_pattern = key;
                    #key_predicate
                }

                fn version_predicate(version: Self::Version) -> Self::VersionPredicate {
                    #diesel::ExpressionMethods::eq(#version_col, version)
                }

                fn version_assignment(version: Self::Version) -> Self::VersionAssignment {
                    #diesel::query_builder::AsChangeset::as_changeset(
                        #diesel::ExpressionMethods::eq(#version_col, version),
                    )
                }

                fn changeset(&self) -> Self::Changeset {
                    #changeset
                }

                fn describe_key(key: &Self::Key) -> ::std::string::String {
                    let #key_pattern = key;
                    #private::describe_key(&[#((#key_names, #key_vars as &dyn ::core::fmt::Debug),)*])
                }
            }
        };
    }
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
