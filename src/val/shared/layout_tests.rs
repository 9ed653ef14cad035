//! Inline strings: decoded as encoded, stray bytes and bad UTF-8 refused.

use super::*;

#[test]
fn an_inline_string_decodes_as_encoded_at_every_length() {
    for s in ["", "a", "key7", "fourteen bytes", "é", "日本語で"] {
        for n in 0..=s.len() {
            let Some(part) = s.get(..n) else { continue };
            let cell = Cell::inline(&Val::from(part)).unwrap();
            let back = Cell::decode(cell.encode(), 0).unwrap();
            assert_eq!(back, cell);
            let Cell::Short(short) = back else {
                panic!("{part:?} is not inline")
            };
            assert_eq!(short.as_str(), Some(part));
        }
    }
}

#[test]
fn a_byte_past_an_inline_strings_end_or_bad_utf8_is_refused() {
    for len in 0..SHORT_MAX {
        let [w0, w1] = Cell::inline(&Val::from("x".repeat(len).as_str()))
            .unwrap()
            .encode();
        // Each byte past the end, set.
        for b in len..SHORT_MAX {
            let mut w = [w0, w1];
            let bit = 8 * (b + 2);
            w[bit / 64] |= 1 << (bit % 64);
            assert!(Cell::decode(w, 0).is_err(), "len {len}, stray byte {b}");
        }
    }
    // A lone continuation byte, and a lead byte without its continuation.
    for bad in [&[0x80u8][..], &[b'a', 0xc3], &[0xff, b'b']] {
        let s = Short::new(bad).unwrap();
        assert_eq!(s.as_str(), None, "{bad:?}");
    }
}
