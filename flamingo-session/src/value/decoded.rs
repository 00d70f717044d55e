//! The values a worker thread decoded last, each under the stored text it came from: a load of
//! the same text answers a copy instead of decoding it again.
//!
//! A direct-mapped table of [`SLOTS`] entries per thread: an entry is found by the hash of its
//! text and confirmed by comparing the whole text and the type, so a collision (or a hash an
//! attacker aimed) only costs a decode. Texts longer than [`MAX_TEXT`] are not remembered.

use std::{
    any::{Any, TypeId},
    cell::RefCell,
    hash::BuildHasher as _,
};

use super::{DecodeError, SessionValue};
use crate::backend::IdHashing;

/// Entries per thread.
const SLOTS: usize = 256;
/// Longest stored text remembered, in bytes.
const MAX_TEXT: usize = 2048;

struct Entry {
    type_id: TypeId,
    text: Box<str>,
    value: Box<dyn Any>,
}

thread_local! {
    static DECODED: RefCell<Vec<Option<Entry>>> = const { RefCell::new(Vec::new()) };
}

/// A copy of the `T` decoded last from `text` on this thread, else `decode()`'s, remembered when
/// `T` can [copy](SessionValue::copy_value) it.
pub(super) fn get_or_decode<T: SessionValue>(
    text: &str,
    decode: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    if text.len() > MAX_TEXT {
        return decode();
    }
    let slot = (IdHashing.hash_one(text) as usize) % SLOTS;
    let type_id = TypeId::of::<T>();
    let found = DECODED.with_borrow(|entries| {
        entries
            .get(slot)?
            .as_ref()
            .filter(|entry| entry.type_id == type_id && *entry.text == *text)?
            .value
            .downcast_ref::<T>()?
            .copy_value()
    });
    if let Some(value) = found {
        return Ok(value);
    }
    let value = decode()?;
    if let Some(copy) = value.copy_value() {
        DECODED.with(|entries| {
            // Busy only if a `copy_value` loads a session value itself: then nothing is kept.
            if let Ok(mut entries) = entries.try_borrow_mut() {
                if entries.is_empty() {
                    entries.resize_with(SLOTS, || None);
                }
                entries[slot] = Some(Entry {
                    type_id,
                    text: text.into(),
                    value: Box::new(copy),
                });
            }
        });
    }
    Ok(value)
}

/// What `#[derive(SessionValue)]` implements [`SessionValue::copy_value`] with: a copy by
/// `Clone` when the type is `Clone` ([`CopyByClone`]), none otherwise ([`NoCopy`]), chosen by
/// method resolution on `(&CloneProbe(value)).copy_value()` (the first applicable of the two,
/// which takes one reference less). Not an API.
#[doc(hidden)]
pub struct CloneProbe<'a, T>(pub &'a T);

#[doc(hidden)]
pub trait CopyByClone<T> {
    fn copy_value(&self) -> Option<T>;
}

impl<T: Clone> CopyByClone<T> for CloneProbe<'_, T> {
    fn copy_value(&self) -> Option<T> {
        Some(self.0.clone())
    }
}

#[doc(hidden)]
pub trait NoCopy<T> {
    fn copy_value(&self) -> Option<T>;
}

impl<T> NoCopy<T> for &CloneProbe<'_, T> {
    fn copy_value(&self) -> Option<T> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde::{Deserialize, Serialize};

    use super::*;

    thread_local! {
        static COPIES: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts its copies, to tell a remembered value from a decoded one.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Counted(String);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            COPIES.set(COPIES.get() + 1);
            Counted(self.0.clone())
        }
    }

    impl SessionValue for Counted {
        fn session_type_name() -> std::borrow::Cow<'static, str> {
            "test.Counted".into()
        }
        fn copy_value(&self) -> Option<Self> {
            Some(self.clone())
        }
    }

    fn decode_counting<T: SessionValue>(text: &str, decodes: &Cell<usize>) -> T {
        get_or_decode(text, || {
            decodes.set(decodes.get() + 1);
            super::super::decode::<T>(text)
        })
        .expect("decodes")
    }

    #[test]
    fn a_value_read_again_from_the_same_text_is_copied_not_decoded() {
        let decodes = Cell::new(0);
        let text = super::super::encode(&Counted("tea".into())).unwrap();
        let copies = COPIES.get();
        assert_eq!(decode_counting::<Counted>(&text, &decodes).0, "tea");
        assert_eq!(decode_counting::<Counted>(&text, &decodes).0, "tea");
        assert_eq!(decodes.get(), 1, "the second load must not decode");
        assert_eq!(COPIES.get() - copies, 2, "one copy kept, one answered");
        // Another text is decoded, and answers its own value.
        let other = super::super::encode(&Counted("mug".into())).unwrap();
        assert_eq!(decode_counting::<Counted>(&other, &decodes).0, "mug");
        assert_eq!(decodes.get(), 2);
    }

    #[test]
    fn a_remembered_value_is_never_answered_for_another_type() {
        let decodes = Cell::new(0);
        let text = super::super::encode(&Counted("tea".into())).unwrap();
        decode_counting::<Counted>(&text, &decodes);
        let wrong = get_or_decode::<String>(&text, || super::super::decode::<String>(&text));
        assert!(
            matches!(wrong, Err(DecodeError::Mismatch { .. })),
            "{wrong:?}"
        );
    }

    #[test]
    fn long_texts_and_types_without_a_copy_are_decoded_every_time() {
        let decodes = Cell::new(0);
        let long = super::super::encode(&Counted("x".repeat(MAX_TEXT))).unwrap();
        decode_counting::<Counted>(&long, &decodes);
        decode_counting::<Counted>(&long, &decodes);
        assert_eq!(decodes.get(), 2);
        let decodes = Cell::new(0);
        let text = super::super::encode(&vec![1u32, 2]).unwrap();
        assert_eq!(decode_counting::<Vec<u32>>(&text, &decodes), vec![1, 2]);
        assert_eq!(decode_counting::<Vec<u32>>(&text, &decodes), vec![1, 2]);
        assert_eq!(
            decodes.get(),
            2,
            "Vec<u32> has no copy_value: decoded each time"
        );
    }

    /// Like [`Counted`], but sensitive.
    #[derive(Debug, Serialize, Deserialize)]
    struct Token(String);

    impl SessionValue for Token {
        const SENSITIVE: bool = true;
        fn session_type_name() -> std::borrow::Cow<'static, str> {
            "test.Token".into()
        }
        fn copy_value(&self) -> Option<Self> {
            COPIES.set(COPIES.get() + 1);
            Some(Token(self.0.clone()))
        }
    }

    #[test]
    fn sensitive_values_are_never_kept() {
        let text = super::super::encode(&Token("secret".into())).unwrap();
        let copies = COPIES.get();
        for _ in 0..2 {
            let token = super::super::decode_remembered::<Token>(&text).unwrap();
            assert_eq!(token.0, "secret");
        }
        assert_eq!(
            COPIES.get(),
            copies,
            "a sensitive value must not be copied into the cache"
        );
        let kept = DECODED.with_borrow(|entries| {
            entries
                .iter()
                .flatten()
                .any(|entry| entry.type_id == TypeId::of::<Token>())
        });
        assert!(!kept);
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrow is what the probe resolves on
    fn the_probe_copies_clone_types_only() {
        struct Plain;
        assert_eq!((&CloneProbe(&5u8)).copy_value(), Some(5));
        assert!((&CloneProbe(&Plain)).copy_value().is_none());
    }
}
