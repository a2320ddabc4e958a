#![warn(missing_docs)]
//! `#[derive(Optimistic)]`: describes a diesel model's table, key, version
//! column and writable columns to occ's runtime. Use it through the `occ` crate.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;

/// Derives `occ::Optimistic` for a diesel model. See the `occ` crate's
/// documentation for the attributes.
#[proc_macro_derive(Optimistic, attributes(occ))]
pub fn derive_optimistic(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive(input.into()).into()
}

fn derive(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    syn::parse2::<syn::DeriveInput>(input)
        .and_then(|input| expand::derive(&input))
        .unwrap_or_else(syn::Error::into_compile_error)
}
