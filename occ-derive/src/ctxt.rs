use core::fmt::Display;

use quote::ToTokens;

/// Collects every error of one derive so the user sees them all at once.
#[derive(Default)]
pub struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    /// An error at `tokens` whose message ends in a `help:` line with the fix.
    pub fn error(&mut self, tokens: impl ToTokens, problem: impl Display, help: impl Display) {
        self.push(syn::Error::new_spanned(
            tokens,
            format!("{problem}\nhelp: {help}"),
        ));
    }

    pub fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    pub fn check(self) -> syn::Result<()> {
        self.errors.map_or(Ok(()), Err)
    }
}
