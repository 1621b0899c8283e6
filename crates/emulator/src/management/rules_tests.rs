//! Rule operations and batch delete against a real broker in a temporary directory, including
//! durability of added and removed rules across a broker restart.

use busdrain_broker::{
    Broker, BrokerLimits, Entity, EntityPath, NamespaceConfig, NewMessage, PropertyValue,
    ReceiveMode,
};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use serde_amqp::primitives::{OrderedMap, Timestamp as AmqpTimestamp};
use serde_amqp::Value;

use super::rule_description::{
    CORRELATION_FILTER_CODE, EMPTY_RULE_ACTION_CODE, RULE_DESCRIPTION_CODE, SQL_FILTER_CODE,
    SQL_RULE_ACTION_CODE, TRUE_FILTER_CODE,
};
use super::{handle, ManagementContext};
use crate::auth::ConnectionAuth;
use crate::request::{Request, Response};
use crate::sas::Rights;

const SUBSCRIPTION: &str = "topic.1/Subscriptions/subscription.1";

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    TempDir(std::env::temp_dir().join(format!("busdrain-emulator-rules-{}", uuid::Uuid::new_v4())))
}

fn open(dir: &TempDir) -> Broker {
    Broker::open(
        &dir.0,
        NamespaceConfig::default_namespace(),
        BrokerLimits::default(),
    )
    .expect("broker opens in a temp dir")
}

fn entity(broker: &Broker, path: &str) -> Entity {
    broker
        .entity(&EntityPath::parse(path).expect("valid path"))
        .expect("entity exists in the default namespace")
}

fn text_map(entries: Vec<(&str, Value)>) -> Value {
    let mut map = OrderedMap::new();
    for (k, v) in entries {
        map.insert(Value::String(k.into()), v);
    }
    Value::Map(map)
}

fn request(operation: &str, body: Vec<(&str, Value)>) -> Request {
    Request {
        properties: vec![("operation".into(), Value::String(operation.into()))],
        body: Some(text_map(body)),
        ..Default::default()
    }
}

async fn run(entity: &Entity, request: &Request) -> Response {
    let auth = ConnectionAuth::default();
    auth.grant("sb://localhost/", Rights::ALL, i64::MAX);
    let ctx = ManagementContext {
        entity,
        auth: &auth,
        resource: "topic.1/Subscriptions/subscription.1/$management",
    };
    handle(request, &ctx).await
}

fn sql_rule(name: &str, filter: &str, action: Option<&str>) -> Request {
    let mut description = vec![(
        "sql-filter",
        text_map(vec![("expression", Value::String(filter.into()))]),
    )];
    if let Some(action) = action {
        description.push((
            "sql-rule-action",
            text_map(vec![("expression", Value::String(action.into()))]),
        ));
    }
    request(
        "com.microsoft:add-rule",
        vec![
            ("rule-name", Value::String(name.into())),
            ("rule-description", text_map(description)),
        ],
    )
}

fn remove(name: &str) -> Request {
    request(
        "com.microsoft:remove-rule",
        vec![("rule-name", Value::String(name.into()))],
    )
}

fn enumerate(top: i32, skip: i32) -> Request {
    request(
        "com.microsoft:enumerate-rules",
        vec![("top", Value::Int(top)), ("skip", Value::Int(skip))],
    )
}

fn described_fields(value: &Value) -> (u64, &[Value]) {
    let Value::Described(described) = value else {
        panic!("not a described value: {value:?}")
    };
    let Described {
        descriptor: Descriptor::Code(code),
        value: Value::List(fields),
    } = described.as_ref()
    else {
        panic!("not a code-described list: {described:?}")
    };
    (*code, fields.as_slice())
}

/// (name, filter code, action code) of each rule in an enumerate-rules answer.
fn listed(response: &Response) -> Vec<(String, u64, u64)> {
    if response.status_code == 204 {
        return Vec::new();
    }
    assert_eq!(response.status_code, 200, "{response:?}");
    let Some(Value::Map(body)) = &response.body else {
        panic!("no map body: {response:?}")
    };
    let Some(Value::List(rules)) = body.get(&Value::String("rules".into())) else {
        panic!("no rules list: {body:?}")
    };
    rules
        .iter()
        .map(|entry| {
            let Value::Map(entry) = entry else {
                panic!("entry is not a map")
            };
            let description = entry
                .get(&Value::String("rule-description".into()))
                .expect("rule-description");
            let (code, fields) = described_fields(description);
            assert_eq!(code, RULE_DESCRIPTION_CODE);
            let Value::String(name) = &fields[2] else {
                panic!("name is not a string")
            };
            (
                name.clone(),
                described_fields(&fields[0]).0,
                described_fields(&fields[1]).0,
            )
        })
        .collect()
}

fn names(response: &Response) -> Vec<String> {
    listed(response).into_iter().map(|(n, _, _)| n).collect()
}

fn colored(color: &str) -> NewMessage {
    let mut message = NewMessage {
        payload: vec![0x00, 0x53, 0x77, 0x40].into(),
        message_id: Some(color.to_owned()),
        ..Default::default()
    };
    message
        .application_properties
        .insert("color".into(), PropertyValue::String(color.into()));
    message
}

#[tokio::test]
async fn rules_are_added_listed_and_removed() {
    let dir = temp_dir();
    let broker = open(&dir);
    let sub = entity(&broker, SUBSCRIPTION);

    assert_eq!(
        listed(&run(&sub, &enumerate(100, 0)).await),
        vec![(
            "$Default".to_owned(),
            TRUE_FILTER_CODE,
            EMPTY_RULE_ACTION_CODE
        )]
    );
    let added = run(
        &sub,
        &sql_rule("red", "color = 'red'", Some("SET seen = 1")),
    )
    .await;
    assert_eq!(added.status_code, 200, "{added:?}");
    assert_eq!(
        listed(&run(&sub, &enumerate(100, 0)).await)[1],
        ("red".to_owned(), SQL_FILTER_CODE, SQL_RULE_ACTION_CODE)
    );
    // Paging: skip and top select a window.
    assert_eq!(names(&run(&sub, &enumerate(1, 1)).await), vec!["red"]);
    assert_eq!(run(&sub, &enumerate(10, 2)).await.status_code, 204);

    let duplicate = run(&sub, &sql_rule("RED", "1=1", None)).await;
    assert_eq!(duplicate.status_code, 409, "{duplicate:?}");
    assert_eq!(
        duplicate.error_condition.as_deref(),
        Some("com.microsoft:entity-already-exists")
    );

    assert_eq!(run(&sub, &remove("$Default")).await.status_code, 200);
    let missing = run(&sub, &remove("$Default")).await;
    assert_eq!(missing.status_code, 404, "{missing:?}");
    assert_eq!(missing.error_condition.as_deref(), Some("amqp:not-found"));
    assert_eq!(names(&run(&sub, &enumerate(100, 0)).await), vec!["red"]);
    broker.close();
}

#[tokio::test]
async fn a_malformed_rule_is_refused_with_its_position_and_changes_nothing() {
    let dir = temp_dir();
    let broker = open(&dir);
    let sub = entity(&broker, SUBSCRIPTION);
    let refused = run(&sub, &sql_rule("bad", "color = = 'red'", None)).await;
    assert_eq!(refused.status_code, 400, "{refused:?}");
    assert_eq!(
        refused.error_condition.as_deref(),
        Some("com.microsoft:argument-error")
    );
    assert!(
        refused.description.contains("position 9"),
        "{}",
        refused.description
    );
    let bad_action = run(&sub, &sql_rule("bad", "1=1", Some("SET color ="))).await;
    assert_eq!(bad_action.status_code, 400, "{bad_action:?}");
    assert!(
        bad_action.description.contains("position 12"),
        "{}",
        bad_action.description
    );
    assert_eq!(
        names(&run(&sub, &enumerate(100, 0)).await),
        vec!["$Default"]
    );
    broker.close();
}

#[tokio::test]
async fn an_added_rule_routes_messages_and_its_action_changes_them() {
    let dir = temp_dir();
    let broker = open(&dir);
    let sub = entity(&broker, SUBSCRIPTION);
    let topic = entity(&broker, "topic.1");
    assert_eq!(run(&sub, &remove("$Default")).await.status_code, 200);
    let added = run(
        &sub,
        &sql_rule(
            "red",
            "color = 'red'",
            Some("SET seen = 'yes'; REMOVE color"),
        ),
    )
    .await;
    assert_eq!(added.status_code, 200, "{added:?}");
    let correlation = request(
        "com.microsoft:add-rule",
        vec![
            ("rule-name", Value::String("blue-order".into())),
            (
                "rule-description",
                text_map(vec![(
                    "correlation-filter",
                    text_map(vec![
                        ("message-id", Value::String("blue".into())),
                        (
                            "properties",
                            text_map(vec![("color", Value::String("blue".into()))]),
                        ),
                    ]),
                )]),
            ),
        ],
    );
    assert_eq!(run(&sub, &correlation).await.status_code, 200);
    let rules = listed(&run(&sub, &enumerate(100, 0)).await);
    assert_eq!(rules[1].1, CORRELATION_FILTER_CODE);

    topic
        .send(vec![colored("green"), colored("red"), colored("blue")])
        .await
        .expect("send");
    let deliveries = sub
        .receive(10, ReceiveMode::ReceiveAndDelete)
        .await
        .expect("receive");
    let ids: Vec<_> = deliveries
        .iter()
        .map(|d| d.message.content.message_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(ids, vec!["red", "blue"]);
    let red = &deliveries[0].message.modified_properties;
    assert_eq!(red.get("seen"), Some(&PropertyValue::String("yes".into())));
    assert_eq!(red.get("color"), Some(&PropertyValue::Removed));
    assert!(deliveries[1].message.modified_properties.is_empty());
    broker.close();
}

/// A producer's message as the send link hands it to the broker.
fn sent_message() -> NewMessage {
    use fe2o3_amqp_types::messaging::{ApplicationProperties, Message, MessageId, Properties};
    let properties = Properties::builder()
        .message_id(MessageId::Ulong(7))
        .subject("original")
        .build();
    let message = Message::builder()
        .properties(properties)
        .application_properties(
            ApplicationProperties::builder()
                .insert("color", "red")
                .insert("tmp", 1)
                .insert("nulled", 2)
                .build(),
        )
        .value("body")
        .build();
    let bytes =
        serde_amqp::to_vec(&fe2o3_amqp_types::messaging::message::__private::Serializable(message))
            .expect("encodes");
    crate::bridge::new_message(crate::message::decode_message(&bytes).expect("decodes"))
}

/// The next message of `entity` as encoded for a consumer, with its stamp.
async fn next_delivery(entity: &Entity) -> (crate::message::DeliveryStamp, Vec<u8>) {
    let mut deliveries = entity
        .receive(1, ReceiveMode::ReceiveAndDelete)
        .await
        .expect("receive");
    assert_eq!(deliveries.len(), 1);
    let delivery = deliveries.remove(0);
    let stamp = crate::bridge::stamp(&delivery.message, None);
    let bytes = crate::message::encode_delivery(&delivery.message.content.payload, &stamp)
        .expect("encodes the delivery");
    (stamp, bytes)
}

/// What a consumer of `entity` receives next, decoded as an AMQP client would.
async fn received(
    entity: &Entity,
) -> fe2o3_amqp_types::messaging::Message<fe2o3_amqp_types::messaging::Body<Value>> {
    use fe2o3_amqp_types::messaging::message::__private::Deserializable;
    let (_, bytes) = next_delivery(entity).await;
    serde_amqp::from_slice::<Deserializable<_>>(&bytes)
        .expect("a client decodes it")
        .0
}

#[tokio::test]
async fn a_rule_action_reaches_the_consumer_removed_nulled_and_system_fields_rewritten() {
    use fe2o3_amqp_types::messaging::MessageId;
    use fe2o3_amqp_types::primitives::SimpleValue;
    let dir = temp_dir();
    let broker = open(&dir);
    let sub = entity(&broker, SUBSCRIPTION);
    let topic = entity(&broker, "topic.1");
    assert_eq!(run(&sub, &remove("$Default")).await.status_code, 200);
    let action = "REMOVE tmp; SET nulled = NULL; SET added = 'x'; SET sys.Label = 'relabelled'; \
                  SET sys.CorrelationId = 'corr'; SET sys.ContentType = 'text/plain'; \
                  SET sys.To = 'dest'; SET sys.ReplyTo = 'back'";
    let added = run(&sub, &sql_rule("act", "color = 'red'", Some(action))).await;
    assert_eq!(added.status_code, 200, "{added:?}");

    topic.send(vec![sent_message()]).await.expect("send");
    let message = received(&sub).await;
    let properties = message
        .application_properties
        .expect("application properties");
    assert_eq!(
        properties.get("tmp"),
        None,
        "REMOVE takes the property away"
    );
    assert!(
        properties.contains_key("nulled"),
        "SET p = NULL keeps the property"
    );
    assert_eq!(properties.get("nulled"), Some(&SimpleValue::Null));
    assert_eq!(
        properties.get("added"),
        Some(&SimpleValue::String("x".into()))
    );
    assert_eq!(
        properties.get("color"),
        Some(&SimpleValue::String("red".into()))
    );
    let system = message.properties.expect("properties");
    assert_eq!(system.subject.as_deref(), Some("relabelled"));
    assert_eq!(
        system.correlation_id,
        Some(MessageId::String("corr".into()))
    );
    assert_eq!(system.content_type.map(|c| c.0), Some("text/plain".into()));
    assert_eq!(system.to.as_deref(), Some("dest"));
    assert_eq!(system.reply_to.as_deref(), Some("back"));
    assert_eq!(
        system.message_id,
        Some(MessageId::Ulong(7)),
        "an unchanged identifier keeps its AMQP type"
    );
    broker.close();
}

#[tokio::test]
async fn an_unmodified_copy_is_delivered_byte_for_byte() {
    let dir = temp_dir();
    let broker = open(&dir);
    let sub = entity(&broker, SUBSCRIPTION);
    let topic = entity(&broker, "topic.1");
    let sent = sent_message();
    let payload = sent.payload.clone();
    topic.send(vec![sent]).await.expect("send");
    let (stamp, bytes) = next_delivery(&sub).await;
    assert!(
        bytes.ends_with(&payload[payload.len() - 40..]),
        "properties, application properties and body are the stored bytes"
    );
    assert!(stamp.removed_properties.is_empty() && stamp.modified_properties.is_empty());
    broker.close();
}

#[tokio::test]
async fn rule_changes_survive_a_restart() {
    let dir = temp_dir();
    {
        let broker = open(&dir);
        let sub = entity(&broker, SUBSCRIPTION);
        assert_eq!(
            run(
                &sub,
                &sql_rule("kept", "color = 'red'", Some("SET seen = 1"))
            )
            .await
            .status_code,
            200
        );
        assert_eq!(run(&sub, &remove("$Default")).await.status_code, 200);
        broker.close();
    }
    let broker = open(&dir);
    let sub = entity(&broker, SUBSCRIPTION);
    assert_eq!(
        listed(&run(&sub, &enumerate(100, 0)).await),
        vec![("kept".to_owned(), SQL_FILTER_CODE, SQL_RULE_ACTION_CODE)]
    );
    // The reloaded rule still routes.
    entity(&broker, "topic.1")
        .send(vec![colored("green"), colored("red")])
        .await
        .expect("send");
    let deliveries = sub
        .receive(10, ReceiveMode::ReceiveAndDelete)
        .await
        .expect("receive");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        deliveries[0].message.content.message_id.as_deref(),
        Some("red")
    );
    broker.close();
}

#[tokio::test]
async fn rule_operations_on_a_queue_are_refused() {
    let dir = temp_dir();
    let broker = open(&dir);
    let queue = entity(&broker, "queue.1");
    let response = run(&queue, &enumerate(10, 0)).await;
    assert_eq!(response.status_code, 400, "{response:?}");
    broker.close();
}

fn delete_request(count: i32, before_ms: i64, session: Option<&str>) -> Request {
    let mut body = vec![
        ("message-count", Value::Int(count)),
        (
            "enqueued-time-utc",
            Value::Timestamp(AmqpTimestamp::from_milliseconds(before_ms)),
        ),
    ];
    if let Some(session) = session {
        body.push(("session-id", Value::String(session.into())));
    }
    request("com.microsoft:batch-delete-messages", body)
}

fn deleted_count(response: &Response) -> &Value {
    assert_eq!(response.status_code, 200, "{response:?}");
    let Some(Value::Map(body)) = &response.body else {
        panic!("no body")
    };
    body.get(&Value::String("message-count".into()))
        .expect("message-count")
}

#[tokio::test]
async fn batch_delete_removes_the_oldest_messages_up_to_the_count() {
    let dir = temp_dir();
    let broker = open(&dir);
    let queue = entity(&broker, "queue.1");
    queue
        .send(vec![colored("a"), colored("b"), colored("c")])
        .await
        .expect("send");
    let later = busdrain_broker::Timestamp::now().as_unix_millis() + 60_000;
    assert_eq!(
        deleted_count(&run(&queue, &delete_request(2, later, None)).await),
        &Value::Int(2)
    );
    // Nothing was enqueued before the epoch.
    assert_eq!(
        deleted_count(&run(&queue, &delete_request(10, 0, None)).await),
        &Value::Int(0)
    );
    let left = queue
        .receive(10, ReceiveMode::ReceiveAndDelete)
        .await
        .expect("receive");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].message.content.message_id.as_deref(), Some("c"));

    let refused = run(&queue, &delete_request(0, later, None)).await;
    assert_eq!(refused.status_code, 400, "{refused:?}");
    let refused = run(&queue, &delete_request(4001, later, None)).await;
    assert_eq!(refused.status_code, 400, "{refused:?}");
    broker.close();
}

#[tokio::test]
async fn batch_delete_with_a_session_id_keeps_other_sessions() {
    let dir = temp_dir();
    let broker = open(&dir);
    let queue = entity(&broker, "session-queue.1");
    let in_session = |id: &str, session: &str| NewMessage {
        session_id: Some(session.to_owned()),
        ..colored(id)
    };
    queue
        .send(vec![
            in_session("a1", "a"),
            in_session("b1", "b"),
            in_session("a2", "a"),
        ])
        .await
        .expect("send");
    let later = busdrain_broker::Timestamp::now().as_unix_millis() + 60_000;
    assert_eq!(
        deleted_count(&run(&queue, &delete_request(10, later, Some("a"))).await),
        &Value::Int(2)
    );
    assert_eq!(
        deleted_count(&run(&queue, &delete_request(10, later, None)).await),
        &Value::Int(1)
    );
    broker.close();
}
