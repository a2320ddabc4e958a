//! The derive's input as occ sees it, keeping the syn nodes for spans.

use proc_macro2::Ident;
use syn::{Data, DeriveInput, Fields, Type};

use crate::attr;
use crate::ctxt::Ctxt;

pub struct Input<'a> {
    pub original: &'a DeriveInput,
    pub attrs: attr::Container,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub attrs: attr::Field,
}

impl<'a> Field<'a> {
    /// The column this field maps to, as diesel maps it.
    pub fn column(&self) -> &Ident {
        self.attrs.column_name.as_ref().unwrap_or(self.ident)
    }
}

impl<'a> Input<'a> {
    pub fn from_syn(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = attr::container(cx, &input.attrs);
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(unnamed) => {
                    cx.error(
                        unnamed,
                        "#[derive(Optimistic)] needs named fields: occ maps each field to the column of the same name",
                        format!(
                            "name the fields: `struct {} {{ id: i32, #[occ(version)] version: i32, .. }}`",
                            input.ident
                        ),
                    );
                    return None;
                }
                Fields::Unit => {
                    cx.error(
                        &input.ident,
                        "#[derive(Optimistic)] needs a struct with fields: a key, a version and the columns to write",
                        format!(
                            "add the row's fields: `struct {} {{ id: i32, #[occ(version)] version: i32, .. }}`",
                            input.ident
                        ),
                    );
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error(
                    data.enum_token,
                    "#[derive(Optimistic)] does not apply to an enum",
                    "derive it on the struct that maps one table row",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error(
                    data.union_token,
                    "#[derive(Optimistic)] does not apply to a union",
                    "derive it on the struct that maps one table row",
                );
                return None;
            }
        };
        let fields = named
            .named
            .iter()
            .map(|field| Field {
                ident: field.ident.as_ref().expect("named field"),
                ty: &field.ty,
                attrs: attr::field(cx, &field.attrs),
            })
            .collect();
        Some(Input {
            original: input,
            attrs,
            fields,
        })
    }
}
