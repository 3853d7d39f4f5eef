//! The `"name":` text of every field of a callsite, escaped once per thread and callsite
//! instead of for every field of every line.
//!
//! A field's name is the same `&'static str` on every line its callsite writes, yet checking
//! and copying it piece by piece (the opening quote, the name, the closing `":`) was the
//! largest single cost of the JSON format: about 17 keys a call through the logging layer,
//! 2,800 instructions a call, more than the values (BENCHMARKS.md, "Instructions per call").
//! Here each callsite's keys are written once into one table, and a line copies each key
//! whole.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tracing::Metadata;
use tracing::callsite::Identifier;
use tracing::field::Field;

/// The keys of one callsite's fields, by field index.
struct Table {
    /// Each field's name, and `"name":` with the name escaped as a JSON string.
    keys: Box<[(&'static str, Box<str>)]>,
}

/// The keys of the callsite a [`FieldWriter`](super::json) writes the fields of.
#[derive(Clone, Default)]
pub(crate) struct Keys(Option<Rc<Table>>);

impl Keys {
    /// The keys of `metadata`'s callsite, written the first time this thread sees it.
    pub(crate) fn of(metadata: &Metadata<'_>) -> Self {
        thread_local! {
            // Bounded by the program: one entry per callsite (static) whose fields this
            // thread wrote.
            static TABLES: RefCell<HashMap<Identifier, Rc<Table>, foldhash::fast::FixedState>> =
                RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::default()));
        }
        let callsite = metadata.callsite();
        TABLES
            .try_with(|tables| {
                // Only borrowed for the lookup: nothing here logs.
                let mut tables = tables.try_borrow_mut().ok()?;
                if let Some(table) = tables.get(&callsite) {
                    return Some(table.clone());
                }
                let table = Rc::new(Table {
                    keys: metadata
                        .fields()
                        .iter()
                        .map(|field| (field.name(), key_text(field.name())))
                        .collect(),
                });
                tables.insert(callsite, table.clone());
                Some(table)
            })
            .ok()
            .flatten()
            .map_or_else(Self::default, |table| Self(Some(table)))
    }

    /// `field`'s `"name":`, when the table holds that very name at the field's index. The
    /// check is on the name itself (its address and length), not the callsite: a key is
    /// made from the name alone, so it cannot be wrong even for a field of another
    /// callsite, or of a callsite whose metadata is built anew with the same identifier.
    #[inline]
    pub(crate) fn get(&self, field: &Field) -> Option<&str> {
        let (name, key) = self.0.as_ref()?.keys.get(field.index())?;
        std::ptr::eq(*name, field.name()).then_some(&**key)
    }
}

/// `"name":`, the name escaped.
fn key_text(name: &str) -> Box<str> {
    let mut key = String::with_capacity(name.len() + 3);
    push_key(&mut key, name);
    key.into_boxed_str()
}

/// Appends `"name":`, the name escaped.
pub(crate) fn push_key(out: &mut String, name: &str) {
    out.push('"');
    super::json::push_escaped(out, name);
    out.push_str("\":");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_only_given_for_the_very_name_it_was_made_from() {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let a = tracing::info_span!("a", first = 1, "we\"ird" = 2);
            let b = tracing::info_span!("b", other = 1, more = 2);
            let (a, b) = (a.metadata().expect("a"), b.metadata().expect("b"));
            let weird = a.fields().field("we\"ird").expect("field");
            assert_eq!(Keys::of(a).get(&weird), Some(r#""we\"ird":"#));
            // Found again, the same.
            assert_eq!(Keys::of(a).get(&weird), Some(r#""we\"ird":"#));
            // The same index in another callsite is another name: no key from this table.
            let more = b.fields().field("more").expect("field");
            assert_eq!(Keys::of(a).get(&more), None);
            assert_eq!(Keys::of(b).get(&more), Some(r#""more":"#));
        });
    }
}
