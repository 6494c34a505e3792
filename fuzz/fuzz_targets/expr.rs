//! Fuzzes workflow expressions, which customers write and both planes compile: any text through
//! `Expression::compile` (the length and depth limits, CEL's parser, the checks on the tree it
//! gives), and whatever compiles evaluated as a `set` assignment and as a `condition` against a
//! few variables. Nothing may panic or overflow a stack, however long, deep or broken the source.
#![no_main]

use freya_shared::workflow::expr::Expression;
use freya_shared::workflow::Variables;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expression) = Expression::compile(source) else {
        return;
    };
    let mut vars = Variables::new();
    vars.insert("choice".into(), json!("1"));
    vars.insert("attempts".into(), json!(2));
    vars.insert(
        "customer".into(),
        json!({"tier": "gold", "orders": [5, 12], "name": null}),
    );
    let _ = expression.evaluate(&vars);
    let _ = expression.evaluate_bool(&Variables::new());
});
