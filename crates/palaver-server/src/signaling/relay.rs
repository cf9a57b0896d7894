//! The shape and size rules of `rtc.signal` (see `docs/protocol.md`, "Call requests"),
//! checked before the call is looked at. Who may signal whom is [`Call::relay`]'s part.
//!
//! [`Call::relay`]: super::Call::relay

use palaver_protocol::ws::SendSignal;

use super::CallError;

/// Longest ICE candidate line relayed, bytes (RFC 8839 lines are far shorter).
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Longest `sdpMid`, characters.
pub const MAX_SDP_MID_CHARS: usize = 64;
/// Longest `usernameFragment`, characters (RFC 8839 §5.4 allows 4–256).
pub const MAX_UFRAG_CHARS: usize = 256;

/// Checks that `signal` carries exactly one of `description` and `candidate`, within the
/// bounds (inclusive): an SDP of at most `max_sdp_bytes` bytes (`rtc.max_sdp_bytes`), a
/// candidate line of at most [`MAX_CANDIDATE_BYTES`], an `sdpMid` of at most
/// [`MAX_SDP_MID_CHARS`] and a `usernameFragment` of at most [`MAX_UFRAG_CHARS`]
/// characters. (`description.type` outside the four W3C types never deserializes.)
///
/// # Errors
/// [`CallError::Invalid`] naming the field at fault: `description` when both or neither
/// are given, else `description.sdp`, `candidate.candidate`, `candidate.sdpMid` or
/// `candidate.usernameFragment`.
pub fn check(signal: &SendSignal, max_sdp_bytes: usize) -> Result<(), CallError> {
    match (&signal.description, &signal.candidate) {
        (Some(description), None) => at_most(
            "description.sdp",
            description.sdp.len(),
            max_sdp_bytes,
            "bytes",
        ),
        (None, Some(candidate)) => {
            at_most(
                "candidate.candidate",
                candidate.candidate.len(),
                MAX_CANDIDATE_BYTES,
                "bytes",
            )?;
            let chars = |v: &Option<String>| v.as_ref().map_or(0, |v| v.chars().count());
            at_most(
                "candidate.sdpMid",
                chars(&candidate.sdp_mid),
                MAX_SDP_MID_CHARS,
                "characters",
            )?;
            at_most(
                "candidate.usernameFragment",
                chars(&candidate.username_fragment),
                MAX_UFRAG_CHARS,
                "characters",
            )
        }
        _ => Err(CallError::Invalid {
            field: "description",
            message: "give exactly one of description and candidate".into(),
        }),
    }
}

/// [`CallError::Invalid`] naming `field` when `len` exceeds `max` (in `unit`).
fn at_most(field: &'static str, len: usize, max: usize, unit: &str) -> Result<(), CallError> {
    if len > max {
        return Err(CallError::Invalid {
            field,
            message: format!("{field} must be at most {max} {unit}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::ws::{IceCandidate, SdpType, SessionDescription};

    fn description(sdp_len: usize) -> SendSignal {
        SendSignal {
            call_id: "c".into(),
            to: "p".into(),
            description: Some(SessionDescription {
                kind: SdpType::Offer,
                sdp: "a".repeat(sdp_len),
            }),
            candidate: None,
        }
    }

    fn candidate(line: usize, mid: usize, ufrag: usize) -> SendSignal {
        SendSignal {
            call_id: "c".into(),
            to: "p".into(),
            description: None,
            candidate: Some(IceCandidate {
                candidate: "c".repeat(line),
                sdp_mid: Some("é".repeat(mid)),
                sdp_m_line_index: Some(0),
                username_fragment: Some("ü".repeat(ufrag)),
            }),
        }
    }

    fn field_of(result: Result<(), CallError>) -> &'static str {
        match result {
            Err(CallError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn exactly_one_payload() {
        let mut neither = description(1);
        neither.description = None;
        assert_eq!(field_of(check(&neither, 100)), "description");
        let mut both = candidate(1, 1, 4);
        both.description = description(1).description;
        assert_eq!(field_of(check(&both, 100)), "description");
    }

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(check(&description(100), 100), Ok(()));
        assert_eq!(field_of(check(&description(101), 100)), "description.sdp");
        assert_eq!(check(&candidate(1024, 64, 256), 0), Ok(()));
        assert_eq!(
            field_of(check(&candidate(1025, 1, 4), 0)),
            "candidate.candidate"
        );
    }

    #[test]
    fn sdp_mid_and_ufrag_count_characters_not_bytes() {
        // "é" and "ü" are two bytes each: only the character count matters.
        assert_eq!(check(&candidate(1, 64, 256), 0), Ok(()));
        assert_eq!(field_of(check(&candidate(1, 65, 4), 0)), "candidate.sdpMid");
        assert_eq!(
            field_of(check(&candidate(1, 1, 257), 0)),
            "candidate.usernameFragment"
        );
    }
}
