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
///
/// `diesel` is declared as a helper too, so a model that derives nothing else
/// from diesel (one that borrows its fields, say) can still name its table.
#[proc_macro_derive(Optimistic, attributes(occ, diesel))]
pub fn derive_optimistic(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    derive(input.into()).into()
}

fn derive(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    syn::parse2::<syn::DeriveInput>(input)
        .map(|input| expand::derive(&input))
        .unwrap_or_else(syn::Error::into_compile_error)
}

#[cfg(test)]
mod tests {
    // The compile tests cannot see this: their crate links `occ` under its own
    // name, so a stray `::occ` path would still resolve there.
    #[test]
    fn crate_attribute_replaces_every_occ_path() {
        let out = super::derive(quote::quote! {
            #[occ(crate = "crate::storage::concurrency")]
            struct Account {
                id: i32,
                #[occ(version)]
                version: i32,
            }
        })
        .to_string();
        assert!(
            out.contains("use crate :: storage :: concurrency :: __private as __occ"),
            "{out}"
        );
        assert!(
            out.contains("impl __occ :: Optimistic for Account"),
            "{out}"
        );
        assert!(!out.contains(":: occ ::"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn an_empty_primary_key_is_an_error_not_id() {
        let out = super::derive(quote::quote! {
            #[diesel(table_name = accounts, primary_key())]
            struct Account {
                id: i32,
                #[occ(version)]
                version: i32,
            }
        })
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("names no field"), "{out}");
    }
}
