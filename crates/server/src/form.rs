//! Reading `application/x-www-form-urlencoded` bodies on hot paths.
//!
//! `web::Form` decodes every byte of every field in several passes (looking
//! for `&`, `=`, `+` and `%` one byte at a time), which for an LTI launch,
//! whose `id_token` is a few kilobytes of base64url that need no decoding
//! at all, was about 5 % of the instructions of a full launch. [`pairs`]
//! finds the separators with `memchr` and decodes only the fields that hold
//! a `+` or a `%`, with the same result as `form_urlencoded::parse`
//! (invalid UTF-8 is replaced, as there).

use std::borrow::Cow;

/// The decoded `(name, value)` pairs of a urlencoded body, in order; empty
/// pairs (`a=1&&b=2`) are skipped and a pair without `=` has an empty value.
pub fn pairs(body: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    let mut rest = body;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (pair, after) = match memchr::memchr(b'&', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        if pair.is_empty() {
            continue;
        }
        if memchr::memchr2(b'+', b'%', pair).is_some() {
            // Something to decode: the reference decoder, on this pair only.
            if let Some((k, v)) = form_urlencoded::parse(pair).next() {
                return Some((k, v));
            }
            continue;
        }
        let (k, v) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        return Some((String::from_utf8_lossy(k), String::from_utf8_lossy(v)));
    })
}

/// Whether a request's `Content-Type` is a urlencoded form (parameters such
/// as `charset` allowed).
pub fn is_urlencoded(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(String, String)>;

    fn both(body: &[u8]) -> (Pairs, Pairs) {
        let ours = pairs(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let reference = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        (ours, reference)
    }

    #[test]
    fn decodes_exactly_as_form_urlencoded() {
        for body in [
            "",
            "a=1",
            "id_token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_&state=lst_0190abc",
            "a=1&&b=2&",
            "&&",
            "flag&x=",
            "=v",
            "a=b=c",
            "q=two+words&p=%41%42%2B%26&r=%zz&s=%",
            "name=J%C3%BCrgen+M%C3%BCller",
            "bad=%FF%FE&ok=1",
            "k%3D=v%26",
        ] {
            let (ours, reference) = both(body.as_bytes());
            assert_eq!(ours, reference, "{body:?}");
        }
    }

    #[test]
    fn undecoded_fields_are_borrowed() {
        let body = b"id_token=abc.def.ghi&state=s";
        let got: Vec<_> = pairs(body).collect();
        assert!(got
            .iter()
            .all(|(k, v)| matches!(k, Cow::Borrowed(_)) && matches!(v, Cow::Borrowed(_))));
        assert_eq!(got[0].1, "abc.def.ghi");
    }

    #[test]
    fn invalid_utf8_is_replaced_like_the_reference() {
        let (ours, reference) = both(b"a=\xff\xfe&b=ok");
        assert_eq!(ours, reference);
        assert_eq!(ours[0].1, "\u{fffd}\u{fffd}");
    }

    #[test]
    fn content_types() {
        assert!(is_urlencoded("application/x-www-form-urlencoded"));
        assert!(is_urlencoded(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        ));
        assert!(!is_urlencoded("multipart/form-data; boundary=x"));
        assert!(!is_urlencoded("application/json"));
        assert!(!is_urlencoded(""));
    }
}
