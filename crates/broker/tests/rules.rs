//! Topic routing through subscription rules, and rule changes at runtime.

mod common;

use busdrain_broker::{
    Broker, BrokerError, BrokerLimits, NamespaceConfig, PropertyValue, ReceiveMode, Rule,
};
use busdrain_filter::{Filter, SqlFilter, SqlRuleAction};
use common::{body, entity, receive};

fn config(sql: &str, never: &str) -> String {
    format!(
        r#"{{"UserConfig":{{"Namespaces":[{{"Name":"r","Topics":[{{"Name":"orders","Subscriptions":[
      {{"Name":"big","Rules":[{{"Name":"big","Properties":{{"FilterType":"Sql","SqlFilter":{{"SqlExpression":"{sql}"}},
        "Action":{{"SqlExpression":"SET priority = 'high'"}}}}}}]}},
      {{"Name":"all"}},
      {{"Name":"none","Rules":[{{"Name":"never","Properties":{{"FilterType":"Sql","SqlFilter":{{"SqlExpression":"{never}"}}}}}}]}}
    ]}}]}}]}}}}"#
    )
}

fn open(dir: &std::path::Path, sql: &str) -> Broker {
    open_with(dir, sql, "1=0")
}

fn open_with(dir: &std::path::Path, sql: &str, never: &str) -> Broker {
    let config = NamespaceConfig::from_json_str(&config(sql, never)).unwrap();
    Broker::open(dir, config, BrokerLimits::default()).unwrap()
}

fn order(text: &str, quantity: i32) -> busdrain_broker::NewMessage {
    let mut message = common::message(text);
    message
        .application_properties
        .insert("quantity".to_owned(), PropertyValue::Int(quantity));
    message
}

#[tokio::test]
async fn sql_filters_and_actions_route_topic_messages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "quantity > 10");
    let topic = entity(&broker, "orders");
    topic
        .send(vec![order("small", 2), order("large", 50)])
        .await
        .unwrap();

    let big = receive(
        &entity(&broker, "orders/Subscriptions/big"),
        10,
        ReceiveMode::ReceiveAndDelete,
    )
    .await;
    assert_eq!(big.iter().map(body).collect::<Vec<_>>(), ["large"]);
    assert_eq!(
        big[0].message.modified_properties.get("priority"),
        Some(&PropertyValue::from("high")),
        "the rule action's SET is recorded for the emulator to overlay"
    );
    let all = receive(
        &entity(&broker, "orders/Subscriptions/all"),
        10,
        ReceiveMode::ReceiveAndDelete,
    )
    .await;
    assert_eq!(all.len(), 2);
    assert!(all[0].message.modified_properties.is_empty());
    let none = receive(
        &entity(&broker, "orders/Subscriptions/none"),
        10,
        ReceiveMode::ReceiveAndDelete,
    )
    .await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn rules_can_be_added_and_removed_durably() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path(), "quantity > 10");
        let none = entity(&broker, "orders/Subscriptions/none");
        assert_eq!(none.rules().unwrap().len(), 1);
        let rule = Rule {
            name: "tiny".to_owned(),
            filter: Filter::Sql(SqlFilter::parse("quantity < 3").unwrap()),
            action: Some(SqlRuleAction::parse("SET tiny = TRUE").unwrap()),
        };
        none.add_rule(rule.clone()).await.unwrap();
        assert!(matches!(
            none.add_rule(rule).await,
            Err(BrokerError::RuleAlreadyExists { .. })
        ));
        none.remove_rule("NEVER").await.unwrap();
        assert!(matches!(
            none.remove_rule("never").await,
            Err(BrokerError::RuleNotFound { .. })
        ));
        assert!(matches!(
            entity(&broker, "orders").rules(),
            Err(BrokerError::InvalidOperation { .. })
        ));
        broker.close();
    }
    // Same config: the runtime change survives the restart.
    {
        let broker = open(dir.path(), "quantity > 10");
        let none = entity(&broker, "orders/Subscriptions/none");
        let names: Vec<String> = none.rules().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["tiny"]);
        entity(&broker, "orders")
            .send(vec![order("one", 1), order("nine", 9)])
            .await
            .unwrap();
        let got = receive(&none, 10, ReceiveMode::ReceiveAndDelete).await;
        assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["one"]);
        assert_eq!(
            got[0].message.modified_properties.get("tiny"),
            Some(&PropertyValue::Bool(true))
        );
        broker.close();
    }
    // Another subscription's config changing does not matter…
    {
        let broker = open(dir.path(), "quantity > 100");
        let none = entity(&broker, "orders/Subscriptions/none");
        assert_eq!(none.rules().unwrap()[0].name, "tiny");
        broker.close();
    }
    // …but a changed Config.json for this subscription wins over its stored rules.
    let broker = open_with(dir.path(), "quantity > 100", "1 = 0");
    let none = entity(&broker, "orders/Subscriptions/none");
    let names: Vec<String> = none.rules().unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["never"]);
}
