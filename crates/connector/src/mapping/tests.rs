use std::collections::BTreeMap;

use bytes::Bytes;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::*;
use crate::source::LockToken;

pub(crate) fn message(body: &str) -> ReceivedMessage {
    ReceivedMessage {
        lock_token: LockToken(Uuid::new_v4()),
        body: Bytes::copy_from_slice(body.as_bytes()),
        message_id: Some("m-1".into()),
        sequence_number: 42,
        enqueued_time: OffsetDateTime::from_unix_timestamp(1_714_564_800).expect("valid"),
        locked_until: None,
        session_id: Some("s-1".into()),
        correlation_id: None,
        subject: Some("reading".into()),
        content_type: Some("application/json".into()),
        partition_key: None,
        delivery_count: 1,
        application_properties: BTreeMap::from([
            ("tenant".to_owned(), PropertyValue::String("acme".into())),
            ("priority".to_owned(), PropertyValue::Long(3)),
        ]),
    }
}

fn native(n: NativeType) -> ColumnType<'static> {
    ColumnType::Native(n)
}

fn column(name: &str, expr: &str, typ: NativeType, pk: bool) -> ColumnBinding {
    ColumnBinding::new(
        name.into(),
        SourceExpr::parse(expr).expect("valid expression"),
        native(typ),
        pk,
        pk,
    )
    .expect("bindable")
}

fn mapper(columns: Vec<ColumnBinding>) -> RowMapper {
    RowMapper::new(
        "telemetry".into(),
        columns,
        WritetimeSource::EnqueuedTime,
        TtlSource::Fixed(0),
        NullHandling::Unset,
    )
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid")
}

fn set(v: CqlValue) -> BoundValue {
    MaybeUnset::Set(Some(v))
}

fn assert_bound(row: &MappedRow, expected: &[BoundValue]) {
    assert_eq!(row.values.len(), expected.len());
    for (i, (got, want)) in row.values.iter().zip(expected).enumerate() {
        let same = match (got, want) {
            (MaybeUnset::Unset, MaybeUnset::Unset) => true,
            (MaybeUnset::Set(a), MaybeUnset::Set(b)) => a == b,
            _ => false,
        };
        assert!(same, "value {i}: got {got:?}, want {want:?}");
    }
}

#[test]
fn maps_body_properties_broker_fields_constants_and_now() {
    let m = mapper(vec![
        column("device", "body.device.id", NativeType::Text, true),
        column("temp", "body.readings[1]", NativeType::Double, false),
        column("tenant", "property.tenant", NativeType::Text, false),
        column("seq", "sequence_number", NativeType::BigInt, false),
        column("enq", "enqueued_time", NativeType::Timestamp, false),
        column("src", "const:sensor", NativeType::Text, false),
        column("seen", "now()", NativeType::Timestamp, false),
    ]);
    let row = m
        .map(
            &message(r#"{"device": {"id": "d1"}, "readings": [1.5, 2.5]}"#),
            now(),
        )
        .expect("maps");
    assert_bound(
        &row,
        &[
            set(CqlValue::Text("d1".into())),
            set(CqlValue::Double(2.5)),
            set(CqlValue::Text("acme".into())),
            set(CqlValue::BigInt(42)),
            set(CqlValue::Timestamp(CqlTimestamp(1_714_564_800_000))),
            set(CqlValue::Text("sensor".into())),
            set(CqlValue::Timestamp(CqlTimestamp(1_800_000_000_000))),
            set(CqlValue::BigInt(1_714_564_800_000_000)),
            set(CqlValue::Int(0)),
        ],
    );
    assert!(!row.partition.is_empty());
}

#[test]
fn absent_optional_values_are_unset_or_null_as_configured() {
    let columns = vec![
        column("device", "body.device", NativeType::Text, true),
        column("temp", "body.temp", NativeType::Double, false),
        column("hum", "body.hum", NativeType::Double, false),
    ];
    let unset = mapper(columns.clone());
    let row = unset
        .map(&message(r#"{"device": "d", "hum": null}"#), now())
        .expect("maps");
    assert!(matches!(row.values[1], MaybeUnset::Unset));
    assert!(matches!(row.values[2], MaybeUnset::Unset));
    let nulls = RowMapper::new(
        "r".into(),
        columns,
        WritetimeSource::EnqueuedTime,
        TtlSource::Fixed(0),
        NullHandling::Null,
    );
    let row = nulls
        .map(&message(r#"{"device": "d", "hum": null}"#), now())
        .expect("maps");
    assert!(matches!(row.values[1], MaybeUnset::Set(None)));
    assert!(matches!(row.values[2], MaybeUnset::Set(None)));
}

#[test]
fn poison_messages_get_the_right_reason_and_description() {
    let m = mapper(vec![
        column("device", "body.device", NativeType::Text, true),
        column("temp", "body.temp", NativeType::Int, false),
    ]);
    let err = m
        .map(&message("{not json"), now())
        .expect_err("invalid json");
    assert_eq!(err.reason, DeadLetterReason::InvalidJson);
    assert!(err.to_string().contains("route telemetry"), "{err}");

    let err = m
        .map(&message(r#"{"temp": 1}"#), now())
        .expect_err("missing pk");
    assert_eq!(err.reason, DeadLetterReason::MissingField);
    assert_eq!(err.column, "device");

    let err = m
        .map(&message(r#"{"device": "d", "temp": "warm"}"#), now())
        .expect_err("mismatch");
    assert_eq!(err.reason, DeadLetterReason::TypeMismatch);
    let dl = err.dead_letter();
    assert_eq!(dl.reason, "TypeMismatch");
    assert!(dl.description.contains("column temp"), "{}", dl.description);
    assert!(dl.description.contains("\"warm\""), "{}", dl.description);

    let err = m
        .map(&message(r#"{"device": "d", "temp": 99999999999}"#), now())
        .expect_err("range");
    assert_eq!(err.reason, DeadLetterReason::ValueOutOfRange);
    assert_eq!(err.excerpt, "99999999999");
}

#[test]
fn long_values_are_cut_to_64_chars_in_descriptions() {
    let m = mapper(vec![column("n", "body.n", NativeType::Int, true)]);
    let long = "9".repeat(300);
    let err = m
        .map(&message(&format!(r#"{{"n": "{long}"}}"#)), now())
        .expect_err("too long");
    assert!(err.excerpt.chars().count() <= 64, "{}", err.excerpt);
    let garbage = "x".repeat(300);
    let err = m.map(&message(&garbage), now()).expect_err("invalid json");
    assert!(err.excerpt.chars().count() <= 64);
}

#[test]
fn whole_body_into_text_or_blob_needs_no_json() {
    let m = mapper(vec![
        column("id", "message_id", NativeType::Text, true),
        column("raw", "body", NativeType::Text, false),
        column("bytes", "body", NativeType::Blob, false),
    ]);
    let row = m
        .map(&message("plain text, not JSON"), now())
        .expect("maps");
    assert_bound(
        &row,
        &[
            set(CqlValue::Text("m-1".into())),
            set(CqlValue::Text("plain text, not JSON".into())),
            set(CqlValue::Blob(b"plain text, not JSON".to_vec())),
            set(CqlValue::BigInt(1_714_564_800_000_000)),
            set(CqlValue::Int(0)),
        ],
    );
}

#[test]
fn writetime_and_ttl_from_the_message() {
    let m = RowMapper::new(
        "r".into(),
        vec![column("id", "body.id", NativeType::Text, true)],
        WritetimeSource::Expr(SourceExpr::parse("body.ts").expect("valid")),
        TtlSource::Expr(SourceExpr::parse("body.ttl").expect("valid")),
        NullHandling::Unset,
    );
    let row = m
        .map(
            &message(r#"{"id": "a", "ts": "2024-05-01T12:00:00.000123Z", "ttl": 60}"#),
            now(),
        )
        .expect("maps");
    assert!(matches!(
        row.values[1],
        MaybeUnset::Set(Some(CqlValue::BigInt(1_714_564_800_000_123)))
    ));
    assert!(matches!(
        row.values[2],
        MaybeUnset::Set(Some(CqlValue::Int(60)))
    ));

    let row = m
        .map(&message(r#"{"id": "a", "ts": 1714564800000}"#), now())
        .expect("maps");
    assert!(matches!(
        row.values[1],
        MaybeUnset::Set(Some(CqlValue::BigInt(1_714_564_800_000_000)))
    ));
    assert!(matches!(
        row.values[2],
        MaybeUnset::Set(Some(CqlValue::Int(0)))
    ));

    let err = m.map(&message(r#"{"id": "a"}"#), now()).expect_err("no ts");
    assert_eq!(err.reason, DeadLetterReason::MissingField);
    let err = m
        .map(&message(r#"{"id": "a", "ts": 1, "ttl": -5}"#), now())
        .expect_err("negative ttl");
    assert_eq!(err.reason, DeadLetterReason::ValueOutOfRange);
    let err = m
        .map(&message(r#"{"id": "a", "ts": "soon"}"#), now())
        .expect_err("bad ts");
    assert_eq!(err.reason, DeadLetterReason::TypeMismatch);
}

#[test]
fn same_partition_same_key_bytes() {
    let m = mapper(vec![
        column("device", "body.device", NativeType::Text, true),
        column("v", "body.v", NativeType::Int, false),
    ]);
    let a = m
        .map(&message(r#"{"device": "d1", "v": 1}"#), now())
        .expect("maps");
    let b = m
        .map(&message(r#"{"device": "d1", "v": 2}"#), now())
        .expect("maps");
    let c = m
        .map(&message(r#"{"device": "d2", "v": 1}"#), now())
        .expect("maps");
    assert_eq!(a.partition, b.partition);
    assert_ne!(a.partition, c.partition);
}

#[test]
fn constants_are_checked_when_bound() {
    let bad = ColumnBinding::new(
        "n".into(),
        SourceExpr::parse("const:abc").expect("valid"),
        native(NativeType::Int),
        false,
        false,
    );
    assert!(bad.is_err());
}

#[test]
fn now_into_a_timeuuid_column_is_a_version_1_uuid() {
    let m = mapper(vec![
        column("id", "message_id", NativeType::Text, true),
        column("t", "now()", NativeType::Timeuuid, false),
    ]);
    let row = m.map(&message("{}"), now()).expect("maps");
    match &row.values[1] {
        MaybeUnset::Set(Some(CqlValue::Timeuuid(t))) => {
            assert_eq!(Uuid::from_bytes(*t.as_bytes()).get_version_num(), 1);
        }
        other => panic!("not a timeuuid: {other:?}"),
    }
}

#[test]
fn property_and_broker_inputs_coerce() {
    let m = mapper(vec![
        column("id", "message_id", NativeType::Text, true),
        column("prio", "property.priority", NativeType::Int, false),
        column("dc", "delivery_count", NativeType::Int, false),
        column("enq", "enqueued_time", NativeType::Text, false),
        column("missing", "property.nope", NativeType::Int, false),
    ]);
    let row = m.map(&message("{}"), now()).expect("maps");
    assert_bound(
        &row,
        &[
            set(CqlValue::Text("m-1".into())),
            set(CqlValue::Int(3)),
            set(CqlValue::Int(1)),
            set(CqlValue::Text("2024-05-01T12:00:00Z".into())),
            MaybeUnset::Unset,
            set(CqlValue::BigInt(1_714_564_800_000_000)),
            set(CqlValue::Int(0)),
        ],
    );
}
