//! Validation tests: broken definitions, each answered with the right `{node, field}`, all
//! problems of one document at once, and the documents that must pass.

use serde_json::{json, Value};

use super::test_flows::{crm_lookup, support_line, SALES_AGENT};
use super::{validate, ValidationContext, Workflow, WorkflowError};

/// Where an error is: its node (if any) and field.
type Located = (Option<String>, String);

fn errors_of(flow: Value) -> Vec<Located> {
    let workflow: Workflow = match serde_json::from_value(flow) {
        Ok(w) => w,
        Err(e) => panic!("flow does not parse: {e}"),
    };
    match validate(&workflow, &ValidationContext::with_agents([SALES_AGENT])) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| (e.node, e.field)).collect(),
    }
}

/// The support line with `edit` applied to the node with id `id`.
fn support_line_with(id: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut flow = support_line();
    if let Some(node) = flow["nodes"]
        .as_array_mut()
        .and_then(|nodes| nodes.iter_mut().find(|n| n["id"] == id))
    {
        edit(node);
    }
    flow
}

fn at(node: &str, field: &str) -> Located {
    (Some(node.into()), field.into())
}

#[test]
fn the_example_flows_are_valid() {
    assert_eq!(errors_of(support_line()), []);
    assert_eq!(errors_of(crm_lookup()), []);
}

#[test]
fn each_broken_definition_is_answered_at_its_node_and_field() {
    let add_node = |node: Value| {
        let mut flow = support_line();
        if let Some(nodes) = flow["nodes"].as_array_mut() {
            nodes.push(node);
        }
        flow
    };
    let table: Vec<(&str, Value, Vec<Located>)> = vec![
        (
            "unknown next",
            support_line_with("greet", |n| n["next"] = json!("menuu")),
            vec![at("greet", "next"), at("menu", "id")],
        ),
        (
            "missing next",
            support_line_with("accounts", |n| {
                n.as_object_mut().map(|o| o.remove("next"));
            }),
            vec![at("accounts", "next")],
        ),
        (
            "unknown branch target",
            support_line_with("route", |n| n["branches"][1]["next"] = json!("billing")),
            vec![at("route", "branches[1].next"), at("accounts", "id")],
        ),
        (
            "missing else",
            support_line_with("route", |n| {
                n.as_object_mut().map(|o| o.remove("else"));
            }),
            vec![at("route", "else")],
        ),
        (
            "bad expression",
            support_line_with("route", |n| n["branches"][0]["when"] = json!("choice == ")),
            vec![at("route", "branches[0].when")],
        ),
        (
            "expression reads an undefined variable",
            support_line_with("route", |n| {
                n["branches"][0]["when"] = json!("choise == '1'")
            }),
            vec![at("route", "branches[0].when")],
        ),
        (
            "unknown agent",
            support_line_with("sales", |n| n["agent_id"] = json!("agent-nobody")),
            vec![at("sales", "agent_id")],
        ),
        (
            "zero max turns",
            support_line_with("sales", |n| n["max_turns"] = json!(0)),
            vec![at("sales", "max_turns")],
        ),
        (
            "template reads an undefined variable",
            support_line_with("accounts", |n| n["text"] = json!("Hi {{first_name}}")),
            vec![at("accounts", "text")],
        ),
        (
            "unclosed template",
            support_line_with("accounts", |n| n["text"] = json!("Hi {{caller_number")),
            vec![at("accounts", "text")],
        ),
        (
            "say with text and prompt",
            support_line_with("accounts", |n| n["prompt"] = json!("be nice")),
            vec![at("accounts", "text")],
        ),
        (
            "gather without input kinds",
            support_line_with("menu", |n| n["input"] = json!([])),
            vec![at("menu", "input"), at("menu", "max_digits")],
        ),
        (
            "max digits without dtmf",
            support_line_with("menu", |n| n["input"] = json!(["speech"])),
            vec![at("menu", "max_digits")],
        ),
        (
            "zero gather timeout",
            support_line_with("menu", |n| n["timeout_ms"] = json!(0)),
            vec![at("menu", "timeout_ms")],
        ),
        (
            "saving into a global",
            support_line_with("menu", |n| n["save_as"] = json!("caller_number")),
            vec![
                at("menu", "save_as"),
                at("route", "branches[0].when"),
                at("route", "branches[1].when"),
            ],
        ),
        (
            "unknown no_input target",
            support_line_with("menu", |n| n["no_input"] = json!("gone")),
            vec![at("menu", "no_input")],
        ),
        (
            "empty transfer target",
            support_line_with("handoff", |n| n["to"] = json!(" ")),
            vec![at("handoff", "to")],
        ),
        (
            "missing start",
            {
                let mut f = support_line();
                f["start"] = json!("");
                f
            },
            vec![(None, "start".into())],
        ),
        (
            "unknown start",
            {
                let mut f = support_line();
                f["start"] = json!("hello");
                f
            },
            vec![(None, "start".into())],
        ),
        (
            "empty name",
            {
                let mut f = support_line();
                f["name"] = json!(" ");
                f
            },
            vec![(None, "name".into())],
        ),
        (
            "bad variable name",
            {
                let mut f = support_line();
                f["variables"]["my var"] = json!(1);
                f
            },
            vec![(None, "variables.my var".into())],
        ),
        (
            "duplicate node id",
            add_node(json!({"id": "bye", "type": "end"})),
            vec![at("bye", "id")],
        ),
        (
            "unreachable node",
            add_node(json!({"id": "orphan", "type": "end"})),
            vec![at("orphan", "id")],
        ),
        (
            "nodes with no way to an end",
            {
                let mut f = support_line_with("accounts", |n| n["next"] = json!("hold"));
                if let Some(nodes) = f["nodes"].as_array_mut() {
                    nodes.push(
                        json!({"id": "hold", "type": "gather", "save_as": "x", "next": "hold"}),
                    );
                }
                f
            },
            vec![at("accounts", "next"), at("hold", "next")],
        ),
        (
            "loop that never waits for the caller",
            support_line_with("accounts", |n| n["next"] = json!("accounts")),
            vec![at("accounts", "next"), at("accounts", "next")],
        ),
    ];
    for (name, flow, expected) in table {
        assert_eq!(errors_of(flow), expected, "{name}");
    }
}

#[test]
fn a_transfer_node_s_warm_mode_and_summary_are_checked_like_its_other_fields() {
    let warm = |edit: Value| {
        support_line_with("handoff", |n| {
            if let (Some(node), Some(fields)) = (n.as_object_mut(), edit.as_object()) {
                node.extend(fields.clone());
            }
        })
    };
    assert_eq!(
        errors_of(warm(
            json!({"mode": "warm", "summary": "Caller {{caller_number}} about billing."})
        )),
        []
    );
    assert_eq!(
        errors_of(warm(json!({"mode": "warm"}))),
        [],
        "no summary: bridge at once"
    );
    assert_eq!(
        errors_of(warm(json!({"summary": "Only for warm."}))),
        [at("handoff", "summary")],
        "a summary on a blind transfer"
    );
    assert_eq!(
        errors_of(warm(json!({"mode": "warm", "summary": "  "}))),
        [at("handoff", "summary")]
    );
    assert_eq!(
        errors_of(warm(json!({"mode": "warm", "summary": "x".repeat(501)}))),
        [at("handoff", "summary")]
    );
    assert_eq!(
        errors_of(warm(json!({"mode": "warm", "summary": "Hello {{"}))),
        [at("handoff", "summary")],
        "a broken template"
    );
    let unknown_mode: Result<Workflow, _> =
        serde_json::from_value(warm(json!({"mode": "conference"})));
    assert!(
        unknown_mode.is_err(),
        "an unknown mode is refused when parsing"
    );
}

#[test]
fn function_and_set_nodes_are_checked_field_by_field() {
    let mut flow = crm_lookup();
    flow["nodes"][0]["url"] = json!("ftp://crm.example");
    flow["nodes"][0]["method"] = json!("BREW");
    flow["nodes"][0]["headers"] = json!({"Bad Header": "x", "X-Ok": "{{token}}"});
    flow["nodes"][0]["body"] = json!({"phone": ["{{caller_number"]});
    flow["nodes"][0]["timeout_ms"] = json!(120_000);
    flow["nodes"][0]["on_error"] = json!("nowhere");
    flow["nodes"][1]["assign"] =
        json!({"now": "1", "tier": "customer.tier +", "score": "visits + 1"});
    assert_eq!(
        errors_of(flow),
        [
            at("lookup", "url"),
            at("lookup", "method"),
            at("lookup", "headers.Bad Header"),
            at("lookup", "headers.X-Ok"),
            at("lookup", "body.phone[0]"),
            at("lookup", "timeout_ms"),
            at("lookup", "on_error"),
            at("remember", "assign.now"),
            at("remember", "assign.score"),
            at("remember", "assign.tier"),
            at("sorry", "id"),
        ]
    );
}

#[test]
fn a_loop_of_nodes_that_never_wait_is_named_in_order() {
    let flow = json!({"name": "spin", "start": "a", "nodes": [
        {"id": "a", "type": "set", "assign": {"n": "1"}, "next": "b"},
        {"id": "b", "type": "condition", "branches": [{"when": "n > 5", "next": "bye"}], "else": "c"},
        {"id": "c", "type": "say", "text": "again", "next": "a"},
        {"id": "bye", "type": "end"}]});
    let workflow: Workflow = serde_json::from_value(flow).expect("parses");
    let errors = validate(&workflow, &ValidationContext::default())
        .err()
        .unwrap_or_default();
    assert_eq!(
        errors,
        [WorkflowError {
            node: Some("a".into()),
            field: "next".into(),
            message: "the loop a → b → c → a never waits for the caller: put a `gather` or `agent` node in it".into(),
        }]
    );
}

#[test]
fn unknown_fields_and_node_types_are_refused_when_parsing() {
    for (name, flow) in [
        (
            "typo in a node field",
            json!({"name": "x", "start": "a", "nodes": [{"id": "a", "type": "end", "txt": "bye"}]}),
        ),
        (
            "typo in a document field",
            json!({"name": "x", "strat": "a", "start": "a", "nodes": [{"id": "a", "type": "end"}]}),
        ),
        (
            "unknown node type",
            json!({"name": "x", "start": "a", "nodes": [{"id": "a", "type": "dance"}]}),
        ),
        (
            "unknown input kind",
            json!({"name": "x", "start": "a", "nodes": [{"id": "a", "type": "gather", "input": ["fax"], "save_as": "v"}]}),
        ),
    ] {
        assert!(serde_json::from_value::<Workflow>(flow).is_err(), "{name}");
    }
}

#[test]
fn a_workflow_round_trips_through_json() {
    let workflow: Workflow = serde_json::from_value(support_line()).expect("parses");
    let again: Workflow =
        serde_json::from_value(serde_json::to_value(&workflow).expect("serializes"))
            .expect("parses again");
    assert_eq!(workflow, again);
}

#[test]
fn errors_serialize_as_node_field_message() {
    let errors = validate(
        &serde_json::from_value(support_line_with("sales", |n| n["agent_id"] = json!("x")))
            .expect("parses"),
        &ValidationContext::with_agents([SALES_AGENT]),
    )
    .err()
    .unwrap_or_default();
    assert_eq!(
        serde_json::to_value(&errors).ok(),
        Some(
            json!([{"node": "sales", "field": "agent_id", "message": "no agent `x` in this workspace"}])
        )
    );
    assert_eq!(
        errors[0].to_string(),
        "node `sales`, agent_id: no agent `x` in this workspace"
    );
}

/// The problems `validate` finds in `flow`, each whole.
fn problems_of(flow: Value) -> Vec<WorkflowError> {
    let workflow: Workflow = match serde_json::from_value(flow) {
        Ok(w) => w,
        Err(e) => panic!("flow does not parse: {e}"),
    };
    validate(&workflow, &ValidationContext::with_agents([SALES_AGENT]))
        .err()
        .unwrap_or_default()
}

#[test]
fn expressions_past_the_limits_are_refused_at_their_field_as_errors_not_panics() {
    // What a control plane without the limits published, now reaching an edge's compile step.
    let terms = vec!["choice == '1'"; 2_000].join(" || ");
    let parens = format!("{}choice{}", "(".repeat(10_000), ")".repeat(10_000));
    let deep = format!("{}choice == '1'{}", "(".repeat(100), ")".repeat(100));
    let late_error = format!("'{}' == == 1", "x".repeat(70_000));
    for (when, limit) in [
        (terms, "the limit is 4096"),
        (parens, "the limit is 4096"),
        (deep, "the limit is 64"),
        (late_error, "the limit is 4096"),
    ] {
        let errors = problems_of(support_line_with("route", |n| {
            n["branches"][0]["when"] = json!(when)
        }));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].node.as_deref(), errors[0].field.as_str()),
            (Some("route"), "branches[0].when")
        );
        assert!(errors[0].message.contains(limit), "{}", errors[0].message);
    }
    let assign = vec!["tier"; 2_000].join(" + ");
    let mut flow = crm_lookup();
    flow["nodes"][1]["assign"]["tier"] = json!(assign);
    assert_eq!(
        errors_of(flow),
        [at("remember", "assign.tier")],
        "a `set` node's expressions are held to the same limits"
    );
}

#[test]
fn node_positions_are_kept_for_the_editor_and_left_out_of_what_runs() {
    // Every node type takes a position; a flow without them (every older one) stays valid.
    let mut flow = support_line();
    for (i, node) in flow["nodes"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        node["position"] = json!({"x": 240.0 * i as f64, "y": -12.5});
    }
    assert_eq!(errors_of(flow.clone()), []);
    let workflow: Workflow = serde_json::from_value(flow).expect("parses");
    let again = serde_json::to_value(&workflow).expect("serializes");
    assert_eq!(
        again["nodes"][1]["position"],
        json!({"x": 240.0, "y": -12.5})
    );

    let bare = workflow.clone().without_layout();
    assert!(bare.nodes.iter().all(|n| n.position().is_none()));
    let unpositioned: Workflow = serde_json::from_value(support_line()).expect("parses");
    assert_eq!(bare, unpositioned);
    assert!(!serde_json::to_string(&bare)
        .expect("serializes")
        .contains("position"));

    // A position is two numbers, nothing else.
    let bad = support_line_with("greet", |n| n["position"] = json!({"x": 1, "y": 2, "z": 3}));
    assert!(serde_json::from_value::<Workflow>(bad).is_err());
    let bad = support_line_with("greet", |n| n["position"] = json!({"x": "left", "y": 2}));
    assert!(serde_json::from_value::<Workflow>(bad).is_err());
}
