//! Expressions in `condition.when` and `set.assign`, in CEL (the Common Expression Language, via the
//! `cel` crate — the maintained successor of `cel-interpreter`): safe, side-effect free and not
//! Turing-complete, so a customer's expression always ends. Each is compiled once at validation;
//! a call only evaluates it, binding just the variables it reads.

use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde_json::Value;

use super::Variables;

/// The standard CEL environment, built once per process.
static ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// A problem compiling or evaluating an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// The source is not valid CEL.
    #[error("`{expression}` is not a valid expression: {message}")]
    Syntax { expression: String, message: String },
    /// Evaluation failed (no such field, wrong types, division by zero, ...).
    #[error("`{expression}` failed: {message}")]
    Evaluation { expression: String, message: String },
    /// A condition gave something other than true or false.
    #[error("`{expression}` gave {got}, not true or false")]
    NotBoolean { expression: String, got: String },
}

/// A compiled CEL expression and the variables it reads.
#[derive(Debug)]
pub struct Expression {
    source: String,
    program: cel::Program,
    variables: Vec<String>,
}

impl Expression {
    /// Compiles `source`, listing the flow variables it reads (not the ones its macros bind).
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        let program = ENV.compile(source).map_err(|e| ExprError::Syntax {
            expression: source.into(),
            message: e.to_string(),
        })?;
        let mut bound = Vec::new();
        collect_macro_bindings(program.expression(), &mut bound);
        let mut variables: Vec<String> = program
            .references()
            .variables()
            .into_iter()
            .filter(|v| !bound.contains(v))
            .map(str::to_owned)
            .collect();
        variables.sort();
        Ok(Self {
            source: source.into(),
            program,
            variables,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The flow variables the expression reads, sorted.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Evaluates against `vars`; a variable not set yet reads as `null`.
    pub fn evaluate(&self, vars: &Variables) -> Result<Value, ExprError> {
        let failed = |message: String| ExprError::Evaluation {
            expression: self.source.clone(),
            message,
        };
        let mut context = cel::Context::with_env(Arc::clone(&ENV));
        for name in &self.variables {
            let value = match vars.get(name) {
                Some(v) => to_cel(v),
                None => cel::Value::Null,
            };
            context.add_variable_from_value(name.as_str(), value);
        }
        let result = self
            .program
            .execute(&context)
            .map_err(|e| failed(e.to_string()))?;
        result.json().map_err(|e| failed(e.to_string()))
    }

    /// Evaluates a condition, which must give a boolean.
    pub fn evaluate_bool(&self, vars: &Variables) -> Result<bool, ExprError> {
        match self.evaluate(vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::NotBoolean {
                expression: self.source.clone(),
                got: other.to_string(),
            }),
        }
    }
}

/// A JSON value as CEL sees it. Whole numbers become `int` (not `uint`, as a plain serde
/// conversion would make of positive ones) so that `attempts + 1` works as written.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            (None, None) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => cel::Value::Map(cel::objects::Map::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<std::collections::HashMap<String, cel::Value>>(),
        )),
    }
}

/// Names that comprehension macros (`exists(x, ..)`, `map(x, ..)`) bind inside the expression.
fn collect_macro_bindings<'a>(expr: &'a IdedExpr, bound: &mut Vec<&'a str>) {
    match &expr.expr {
        Expr::Comprehension(c) => {
            bound.push(&c.iter_var);
            bound.extend(c.iter_var2.as_deref());
            bound.push(&c.accu_var);
            for inner in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                collect_macro_bindings(inner, bound);
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                collect_macro_bindings(target, bound);
            }
            call.args
                .iter()
                .for_each(|a| collect_macro_bindings(a, bound));
        }
        Expr::List(list) => list
            .elements
            .iter()
            .for_each(|e| collect_macro_bindings(e, bound)),
        Expr::Map(map) => map
            .entries
            .iter()
            .for_each(|e| collect_entry(&e.expr, bound)),
        Expr::Struct(s) => s.entries.iter().for_each(|e| collect_entry(&e.expr, bound)),
        Expr::Select(select) => collect_macro_bindings(&select.operand, bound),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn collect_entry<'a>(entry: &'a EntryExpr, bound: &mut Vec<&'a str>) {
    match entry {
        EntryExpr::StructField(f) => collect_macro_bindings(&f.value, bound),
        EntryExpr::MapEntry(m) => {
            collect_macro_bindings(&m.key, bound);
            collect_macro_bindings(&m.value, bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Variables {
        let mut v = Variables::new();
        v.insert("choice".into(), json!("1"));
        v.insert("attempts".into(), json!(2));
        v.insert(
            "customer".into(),
            json!({"tier": "gold", "orders": [5, 12]}),
        );
        v
    }

    #[test]
    fn conditions_read_variables_and_fields() {
        for (source, expected) in [
            ("choice == '1'", true),
            ("choice == '2'", false),
            ("customer.tier == 'gold' && attempts < 3", true),
            ("customer.orders.exists(o, o > 10)", true),
            ("size(customer.orders) == 2", true),
        ] {
            let e = Expression::compile(source).expect("compiles");
            assert_eq!(e.evaluate_bool(&vars()), Ok(expected), "{source}");
        }
    }

    #[test]
    fn referenced_variables_leave_out_macro_bindings() {
        let e = Expression::compile("customer.orders.exists(o, o > limit)").expect("compiles");
        assert_eq!(e.variables(), ["customer", "limit"]);
    }

    #[test]
    fn assignments_give_json_values() {
        let e =
            Expression::compile("{'tier': customer.tier, 'next': attempts + 1}").expect("compiles");
        assert_eq!(e.evaluate(&vars()), Ok(json!({"tier": "gold", "next": 3})));
    }

    #[test]
    fn unset_variables_read_as_null() {
        let e = Expression::compile("missing == null").expect("compiles");
        assert_eq!(e.evaluate_bool(&Variables::new()), Ok(true));
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            Expression::compile("choice == "),
            Err(ExprError::Syntax { .. })
        ));
        let e = Expression::compile("customer.nothing == 1").expect("compiles");
        assert!(matches!(
            e.evaluate(&vars()),
            Err(ExprError::Evaluation { .. })
        ));
        let e = Expression::compile("attempts + 1").expect("compiles");
        assert!(matches!(
            e.evaluate_bool(&vars()),
            Err(ExprError::NotBoolean { .. })
        ));
    }
}
