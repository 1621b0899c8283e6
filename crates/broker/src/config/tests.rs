use super::*;

fn parse(json: &str) -> Result<NamespaceConfig, ConfigError> {
    NamespaceConfig::from_json_str(json)
}

fn with_queue_properties(properties: &str) -> String {
    format!(
        r#"{{"UserConfig":{{"Namespaces":[{{"Name":"sbemulatorns","Queues":[{{"Name":"orders","Properties":{{{properties}}}}}],"Topics":[]}}],"Logging":{{"Type":"File"}}}}}}"#
    )
}

fn error_text(result: Result<NamespaceConfig, ConfigError>) -> String {
    match result {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

/// Microsoft's sample Config.json (installer repo), shape for shape.
const MICROSOFT_SAMPLE: &str = r#"{
  "UserConfig": {
    "Namespaces": [
      {
        "Name": "sbemulatorns",
        "Queues": [
          {
            "Name": "queue.1",
            "Properties": {
              "DeadLetteringOnMessageExpiration": false,
              "DefaultMessageTimeToLive": "PT1H",
              "DuplicateDetectionHistoryTimeWindow": "PT20S",
              "ForwardDeadLetteredMessagesTo": "",
              "ForwardTo": "",
              "LockDuration": "PT1M",
              "MaxDeliveryCount": 3,
              "RequiresDuplicateDetection": false,
              "RequiresSession": false
            }
          }
        ],
        "Topics": [
          {
            "Name": "topic.1",
            "Properties": {
              "DefaultMessageTimeToLive": "PT1H",
              "DuplicateDetectionHistoryTimeWindow": "PT20S",
              "RequiresDuplicateDetection": false
            },
            "Subscriptions": [
              {
                "Name": "subscription.1",
                "Properties": {
                  "DeadLetteringOnMessageExpiration": false,
                  "DefaultMessageTimeToLive": "PT1H",
                  "LockDuration": "PT1M",
                  "MaxDeliveryCount": 3,
                  "ForwardDeadLetteredMessagesTo": "",
                  "ForwardTo": "",
                  "RequiresSession": false
                },
                "Rules": [
                  {
                    "Name": "app-prop-filter-1",
                    "Properties": {
                      "FilterType": "Correlation",
                      "CorrelationFilter": {
                        "ContentType": "application/text",
                        "CorrelationId": "id1",
                        "Label": "subject1",
                        "MessageId": "msgid1",
                        "ReplyTo": "someQueue",
                        "ReplyToSessionId": "sessionId",
                        "SessionId": "session1",
                        "To": "xyz",
                        "Properties": { "prop1": "value1", "count": 3 }
                      }
                    }
                  }
                ]
              },
              {
                "Name": "subscription.2",
                "Properties": { "LockDuration": "PT1M" },
                "Rules": [
                  {
                    "Name": "sql-filter-1",
                    "Properties": {
                      "FilterType": "Sql",
                      "SqlFilter": { "SqlExpression": "sys.MessageId = '123456' AND userProp1 = 'value1'" },
                      "Action": { "SqlExpression": "SET sys.To = 'Entity'" }
                    }
                  }
                ]
              },
              { "Name": "subscription.3" }
            ]
          }
        ]
      }
    ],
    "Logging": { "Type": "File" }
  }
}"#;

#[test]
fn parses_microsoft_sample() {
    let config = match parse(MICROSOFT_SAMPLE) {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(config.name, "sbemulatorns");
    let queue = &config.queues[0];
    assert_eq!(queue.name, "queue.1");
    assert_eq!(queue.properties.lock_duration, Duration::from_secs(60));
    assert_eq!(queue.properties.max_delivery_count, 3);
    assert_eq!(
        queue.properties.default_message_time_to_live,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        queue.properties.duplicate_detection_history_time_window,
        Duration::from_secs(20)
    );
    let topic = &config.topics[0];
    assert_eq!(topic.subscriptions.len(), 3);
    let Filter::Correlation(filter) = &topic.subscriptions[0].rules[0].filter else {
        panic!("expected a correlation filter");
    };
    assert_eq!(filter.label.as_deref(), Some("subject1"));
    assert_eq!(filter.properties.get("count"), Some(&Value::Long(3)));
    let rule = &topic.subscriptions[1].rules[0];
    assert!(
        matches!(&rule.filter, Filter::Sql(sql) if sql.expression().starts_with("sys.MessageId"))
    );
    assert_eq!(
        rule.action.as_ref().map(|a| a.to_string()),
        Some("SET sys.To = 'Entity'".to_owned())
    );
    assert_eq!(topic.subscriptions[2].rules, vec![Rule::default_rule()]);
    assert_eq!(config.logging.as_deref(), Some("File"));
}

#[test]
fn defaults_when_properties_are_missing() {
    let config = parse(r#"{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q"}]}]}}"#);
    let config = match config {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(config.queues[0].properties, EntityProperties::default());
    assert!(config.topics.is_empty());
}

#[test]
fn lock_duration_out_of_range_names_entity_property_and_range() {
    let text = error_text(parse(&with_queue_properties(r#""LockDuration":"PT10M""#)));
    assert!(text.contains("queue \"orders\""), "{text}");
    assert!(text.contains("LockDuration"), "{text}");
    assert!(text.contains("PT1S ..= PT5M"), "{text}");
    let text = error_text(parse(&with_queue_properties(r#""LockDuration":"PT0.5S""#)));
    assert!(text.contains("LockDuration"), "{text}");
}

#[test]
fn malformed_duration_is_refused() {
    let text = error_text(parse(&with_queue_properties(
        r#""DefaultMessageTimeToLive":"one hour""#,
    )));
    assert!(text.contains("DefaultMessageTimeToLive"), "{text}");
    assert!(text.contains("one hour"), "{text}");
}

#[test]
fn max_delivery_count_range() {
    let text = error_text(parse(&with_queue_properties(r#""MaxDeliveryCount":0"#)));
    assert!(text.contains("MaxDeliveryCount = 0"), "{text}");
    assert!(text.contains("1 ..= 2147483647"), "{text}");
    let text = error_text(parse(&with_queue_properties(
        r#""MaxDeliveryCount":3000000000"#,
    )));
    assert!(text.contains("MaxDeliveryCount"), "{text}");
    assert!(parse(&with_queue_properties(r#""MaxDeliveryCount":2000"#)).is_ok());
}

#[test]
fn long_ttl_is_allowed_and_timespan_max_means_never() {
    let config = parse(&with_queue_properties(
        r#""DefaultMessageTimeToLive":"P365D""#,
    ));
    assert!(
        matches!(config, Ok(c) if c.queues[0].properties.default_message_time_to_live == Some(Duration::from_secs(365 * 86_400)))
    );
    let config = parse(&with_queue_properties(
        r#""DefaultMessageTimeToLive":"P10675199DT2H48M5.4775807S""#,
    ));
    assert!(
        matches!(config, Ok(c) if c.queues[0].properties.default_message_time_to_live.is_none())
    );
}

#[test]
fn forwarding_is_refused_when_set() {
    let text = error_text(parse(&with_queue_properties(r#""ForwardTo":"other""#)));
    assert!(text.contains("ForwardTo is not supported"), "{text}");
    assert!(parse(&with_queue_properties(r#""ForwardTo":"""#)).is_ok());
}

#[test]
fn unknown_key_is_refused_with_its_path() {
    let text = error_text(parse(&with_queue_properties(r#""LockDurration":"PT1M""#)));
    assert!(
        text.contains("UserConfig.Namespaces[0].Queues[0].Properties"),
        "{text}"
    );
    assert!(text.contains("LockDurration"), "{text}");
}

#[test]
fn wrong_json_type_is_refused_with_its_path() {
    let text = error_text(parse(&with_queue_properties(r#""RequiresSession":"yes""#)));
    assert!(text.contains("RequiresSession"), "{text}");
}

#[test]
fn duplicate_and_invalid_names() {
    let text = error_text(parse(
        r#"{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"Q1"},{"Name":"q1"}]}]}}"#,
    ));
    assert!(text.contains("declared twice"), "{text}");
    let text = error_text(parse(
        r#"{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q1"}],"Topics":[{"Name":"Q1","Subscriptions":[]}]}]}}"#,
    ));
    assert!(text.contains("declared twice"), "{text}");
    let text = error_text(parse(
        r#"{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"-bad"}]}]}}"#,
    ));
    assert!(text.contains("Name"), "{text}");
}

#[test]
fn exactly_one_namespace() {
    let text = error_text(parse(r#"{"UserConfig":{"Namespaces":[]}}"#));
    assert!(text.contains("exactly one namespace"), "{text}");
}

#[test]
fn rule_shape_errors() {
    let rule = |properties: &str| {
        format!(
            r#"{{"UserConfig":{{"Namespaces":[{{"Name":"ns","Topics":[{{"Name":"t","Subscriptions":[{{"Name":"s","Rules":[{{"Name":"r","Properties":{properties}}}]}}]}}]}}]}}}}"#
        )
    };
    let text = error_text(parse(&rule(r#"{"FilterType":"Sql"}"#)));
    assert!(text.contains("SqlFilter"), "{text}");
    let text = error_text(parse(&rule(
        r#"{"FilterType":"Correlation","CorrelationFilter":{}}"#,
    )));
    assert!(text.contains("CorrelationFilter"), "{text}");
    let text = error_text(parse(&rule(r#"{"FilterType":"Regex"}"#)));
    assert!(text.contains("FilterType"), "{text}");
    // A malformed SQL filter is refused with the position of the error.
    let text = error_text(parse(&rule(
        r#"{"FilterType":"Sql","SqlFilter":{"SqlExpression":"color = 'red' AND"}}"#,
    )));
    assert!(text.contains("SqlFilter.SqlExpression"), "{text}");
    assert!(text.contains("position"), "{text}");
    let text = error_text(parse(&rule(
        r#"{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"},"Action":{"SqlExpression":"SET"}}"#,
    )));
    assert!(text.contains("Action.SqlExpression"), "{text}");
}

#[test]
fn default_namespace_matches_documentation() {
    let config = NamespaceConfig::default_namespace();
    assert_eq!(config.name, "sbemulatorns");
    let names: Vec<&str> = config.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["queue.1", "queue.2", "queue.3", "session-queue.1"]);
    assert!(config.queues[3].properties.requires_session);
    assert_eq!(config.topics[0].name, "topic.1");
    assert_eq!(config.topics[0].subscriptions.len(), 2);
}
