//! Property tests: every parser and pure rule of the gateway, fed arbitrary input, never
//! panics and answers with its documented error. These are the rules a hostile client reaches
//! first — frames, routes, ids, cursors, tokens, bodies, resume planning — so they are checked
//! on generated input, not only on the cases someone thought of.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use switchboard::auth::jwt::Verifier;
use switchboard::auth::token;
use switchboard::cursor::PageCursor;
use switchboard::protocol::parse_client_frame;
use switchboard::routes::{resolve, Resolution};
use switchboard::stream::{plan_replay, plan_sparse_replay, Batch, BatchLimit};

const SECRET: &str = "property-test-secret-of-at-least-32-bytes";

/// JSON-ish text: mostly valid-looking frames, with every kind of damage mixed in.
fn frame_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[{}\\[\\]\":,a-z0-9 .\\-e]{0,64}",
        (any::<String>(), any::<i64>(), any::<String>()).prop_map(|(event, id, data)| {
            serde_json::json!({"event": event, "id": id, "data": data}).to_string()
        }),
        (0usize..200).prop_map(|depth| format!(
            "{}{}",
            "{\"event\":\"send\",\"data\":".repeat(depth),
            "}".repeat(depth)
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn frames_parse_or_fail_cleanly(text in frame_text()) {
        match parse_client_frame(&text) {
            Ok(frame) => prop_assert!(frame.event.len() <= text.len()),
            Err(err) => prop_assert!(!err.message.is_empty()),
        }
    }

    #[test]
    fn routes_resolve_any_path(method in "[A-Z]{0,8}", path in "(/[a-zA-Z0-9%{}._~:@-]{0,12}){0,7}") {
        match resolve(&method, &path) {
            Resolution::Found(_) | Resolution::MethodNotAllowed | Resolution::NotFound => {}
        }
    }

    #[test]
    fn ids_are_validated_without_panicking(id in any::<String>()) {
        let results = [
            switchboard::ids::validate_user_id(&id),
            switchboard::ids::validate_room_id(&id),
            switchboard::ids::validate_device_id(&id),
            switchboard::ids::validate_client_id(&id),
            switchboard::direct::validate_message_id(&id),
        ];
        for result in results {
            if let Err(why) = result {
                prop_assert!(!why.is_empty());
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused(at in 0i64..i64::MAX, id in "[a-z0-9_]{1,40}", junk in any::<String>()) {
        let cursor = PageCursor::new(at, id.clone());
        prop_assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
        let _ = PageCursor::decode(&junk);
    }

    #[test]
    fn tokens_never_panic_the_verifier(parts in proptest::collection::vec("[A-Za-z0-9_=-]{0,60}", 0..5), junk in any::<String>()) {
        let verifier = Verifier::new(Some(SECRET), None, None, None).unwrap();
        prop_assert!(verifier.verify(&parts.join("."), chrono::Utc::now()).is_err());
        prop_assert!(verifier.verify(&junk, chrono::Utc::now()).is_err());
    }

    #[test]
    fn any_signed_claims_verify_or_fail_with_a_code(exp in any::<i64>(), iat in proptest::option::of(any::<i64>()), sub in any::<String>()) {
        let mut claims = serde_json::json!({"sub": sub, "exp": exp});
        if let Some(iat) = iat {
            claims["iat"] = iat.into();
        }
        let token = sign(&claims);
        let verifier = Verifier::new(Some(SECRET), None, None, None).unwrap();
        match verifier.verify(&token, chrono::Utc::now()) {
            Ok(identity) => prop_assert_eq!(identity.user_id, sub),
            Err(err) => prop_assert!(err.code().starts_with("token_")),
        }
    }

    #[test]
    fn token_carriers_never_panic(auth in proptest::option::of(any::<String>()), protocols in proptest::option::of(any::<String>()), query in proptest::option::of(any::<String>())) {
        let _ = token::extract(auth.as_deref(), protocols.as_deref(), query.as_deref());
    }

    #[test]
    fn bodies_parse_or_fail_with_a_4xx(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in 0usize..300) {
        match switchboard::http::parse_json::<serde_json::Value>(&bytes, max) {
            Ok(_) => prop_assert!(bytes.len() <= max),
            Err(err) => prop_assert!(err.status == 400 || err.status == 413),
        }
    }

    #[test]
    fn replay_plans_are_sane_for_any_numbers(since in any::<i64>(), last in 0i64..i64::MAX, pruned in 0i64..i64::MAX) {
        let pruned = pruned.min(last);
        let plan = plan_replay(since, last, pruned);
        prop_assert!(plan.from > pruned || plan.from == i64::MAX);
        prop_assert_eq!(plan.through, last);
        if plan.recovered {
            prop_assert!(since >= pruned && since <= last);
        }
    }

    #[test]
    fn sparse_replay_plans_start_after_since_and_never_claim_more(since in any::<i64>(), last in 0i64..i64::MAX, pruned in 0i64..i64::MAX) {
        let pruned = pruned.min(last);
        let plan = plan_sparse_replay(since, last, pruned);
        prop_assert_eq!(plan.from, since.saturating_add(1));
        prop_assert_eq!(plan.through, last);
        prop_assert_eq!(plan.recovered, plan_replay(since, last, pruned).recovered);
    }

    #[test]
    fn batches_respect_their_limits(sizes in proptest::collection::vec(0usize..100_000, 1..200), events in 1i64..100, bytes in 4096usize..1_000_000) {
        let limit = BatchLimit { events, bytes };
        let mut batch = Batch::default();
        let (mut taken, mut total) = (0i64, 0usize);
        for size in &sizes {
            if !batch.admit(*size, limit) {
                break;
            }
            taken += 1;
            total += size;
        }
        prop_assert!(taken >= 1);
        prop_assert!(taken <= events);
        prop_assert!(taken == 1 || total <= bytes);
    }
}

/// An HS256 token over exactly these claims (any numbers, in range for chrono or not).
fn sign(claims: &serde_json::Value) -> String {
    use jwt_compact::alg::{Hs256, Hs256Key};
    use jwt_compact::{AlgorithmExt, Claims, Header};
    Hs256
        .token(
            &Header::empty(),
            &Claims::new(claims.clone()),
            &Hs256Key::new(SECRET.as_bytes()),
        )
        .expect("signing cannot fail")
}
