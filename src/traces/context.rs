//! The caller's trace, from W3C Trace Context's headers
//! (<https://www.w3.org/TR/trace-context/>): `traceparent`, read as the
//! specification says a receiver must, and `tracestate`, kept only beside
//! a valid `traceparent`. Anything malformed, or two `traceparent`
//! headers, is ignored: the request starts a new trace, and is answered
//! as if the header were not there.
//!
//! Parsed here rather than by the SDK's `TraceContextPropagator`, which
//! accepts ids shorter than the format's 32 and 16 digits, and allocates
//! to split the header.

use std::str::FromStr;

use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// `00-` + 32 + `-` + 16 + `-` + 2: the length of version 00.
const TRACEPARENT_LEN: usize = 55;

/// The most list members `tracestate` may have.
const TRACESTATE_MAX_MEMBERS: usize = 32;

/// The context the request's span continues: the caller's, or none.
pub fn parent(headers: &HeaderMap) -> Context {
    match remote_span_context(headers) {
        Some(caller) => Context::new().with_remote_span_context(caller),
        None => Context::new(),
    }
}

fn remote_span_context(headers: &HeaderMap) -> Option<SpanContext> {
    let mut traceparents = headers.get_all(TRACEPARENT).iter();
    let traceparent = traceparents.next()?;
    if traceparents.next().is_some() {
        return None;
    }
    let (trace_id, span_id, flags) = traceparent_fields(traceparent.as_bytes())?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        trace_state(headers),
    ))
}

/// `version-traceid-parentid-flags`, in lowercase hex. A version above 00
/// may add fields after a `-`, which are ignored; `ff` is not a version;
/// all-zero ids are not ids. Of the flags, only "sampled" is kept.
fn traceparent_fields(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    let value = value.trim_ascii();
    if value.len() < TRACEPARENT_LEN {
        return None;
    }
    let [version] = lower_hex::<1>(&value[0..2])?;
    let length_fits = match version {
        0xff => false,
        0 => value.len() == TRACEPARENT_LEN,
        _ => value.len() == TRACEPARENT_LEN || value[TRACEPARENT_LEN] == b'-',
    };
    if !length_fits || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_bytes(lower_hex::<16>(&value[3..35])?);
    let span_id = SpanId::from_bytes(lower_hex::<8>(&value[36..52])?);
    let [flags] = lower_hex::<1>(&value[53..55])?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
    ))
}

/// `N` bytes from `2N` lowercase hex digits; `None` for anything else.
fn lower_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

/// Every `tracestate` header, joined as one list (HTTP allows it split);
/// empty if invalid or longer than the specification allows.
fn trace_state(headers: &HeaderMap) -> TraceState {
    let mut values = headers.get_all(TRACESTATE).iter();
    let Some(first) = values.next() else {
        return TraceState::default();
    };
    let mut joined = String::from(first.to_str().unwrap_or_default());
    for value in values {
        joined.push(',');
        joined.push_str(value.to_str().unwrap_or_default());
    }
    let members: Vec<&str> = joined
        .split(',')
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .collect();
    if members.len() > TRACESTATE_MAX_MEMBERS {
        return TraceState::default();
    }
    TraceState::from_str(&members.join(",")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        headers
    }

    fn caller(pairs: &[(&'static str, &str)]) -> Option<SpanContext> {
        remote_span_context(&headers(pairs))
    }

    #[test]
    fn a_valid_traceparent_is_the_remote_parent() {
        let parent = caller(&[("traceparent", VALID)]).expect("valid");
        assert_eq!(
            parent.trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex")
        );
        assert_eq!(
            parent.span_id(),
            SpanId::from_hex("b7ad6b7169203331").expect("hex")
        );
        assert!(parent.is_sampled());
        assert!(parent.is_remote());
        let context = parent_of(VALID);
        assert_eq!(context.span().span_context(), &parent);
    }

    fn parent_of(traceparent: &str) -> Context {
        parent(&headers(&[("traceparent", traceparent)]))
    }

    #[test]
    fn flags_other_than_sampled_are_dropped_and_unsampled_is_kept() {
        let unsampled = caller(&[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        )])
        .expect("valid");
        assert!(!unsampled.is_sampled());
        let other_flags = caller(&[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-fe",
        )])
        .expect("valid");
        assert_eq!(other_flags.trace_flags(), TraceFlags::default());
    }

    #[test]
    fn later_versions_may_add_fields() {
        assert!(
            caller(&[(
                "traceparent",
                "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next"
            )])
            .is_some()
        );
        assert!(
            caller(&[(
                "traceparent",
                "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            )])
            .is_some()
        );
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for malformed in [
            "",
            "garbage",
            // Version 00 has exactly four fields.
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            // ff is not a version.
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            // Uppercase, short, long, signs, all-zero ids.
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-0100",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-+7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
        ] {
            assert_eq!(caller(&[("traceparent", malformed)]), None, "{malformed:?}");
            assert!(
                !parent_of(malformed).span().span_context().is_valid(),
                "{malformed:?}"
            );
        }
        // Two of them: which one is the caller's is unknown.
        assert_eq!(
            caller(&[("traceparent", VALID), ("traceparent", VALID)]),
            None
        );
        // Bytes that are not text.
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_bytes(b"00-\xff\xfe").expect("opaque bytes"),
        );
        assert_eq!(remote_span_context(&headers), None);
    }

    #[test]
    fn tracestate_is_kept_joined_or_dropped_when_invalid() {
        let state = |values: &[&str]| {
            let mut pairs = vec![("traceparent", VALID)];
            pairs.extend(values.iter().map(|value| ("tracestate", *value)));
            caller(&pairs).expect("valid").trace_state().header()
        };
        assert_eq!(state(&["rojo=00f067aa0ba902b7"]), "rojo=00f067aa0ba902b7");
        assert_eq!(
            state(&["rojo=00f067aa0ba902b7", " congo=t61rcWkgMzE,"]),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        );
        assert_eq!(state(&["not a list member"]), "");
        let members: Vec<String> = (0..33).map(|n| format!("k{n}=v")).collect();
        assert_eq!(state(&[&members.join(",")]), "");
        assert_eq!(state(&[&members[..32].join(",")]).split(',').count(), 32);
    }
}
