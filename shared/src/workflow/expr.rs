//! Expressions in `condition.when` and `set.assign`, in CEL (the Common Expression Language, via the
//! `cel` crate — the maintained successor of `cel-interpreter`): safe, side-effect free and not
//! Turing-complete, so a customer's expression always ends. Each is compiled once at validation;
//! a call only evaluates it, binding just the variables it reads. Every expression is held to
//! the size limits of `limits` ([`MAX_EXPRESSION_CHARS`], [`MAX_EXPRESSION_DEPTH`]) before it is
//! parsed, and parsed and evaluated on a stack large enough for them, so neither plane can be
//! crashed by one.

use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde_json::Value;

use super::Variables;

mod cost;
mod limits;

pub use cost::MAX_EVALUATION_STEPS;
pub use limits::{MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_VALUE_BYTES, MAX_VALUE_DEPTH};

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
    /// The source is longer than [`MAX_EXPRESSION_CHARS`].
    #[error("the expression is {chars} characters long; the limit is {MAX_EXPRESSION_CHARS}")]
    TooLong { chars: usize },
    /// Brackets, conditionals, chained operators or accesses nest deeper than
    /// [`MAX_EXPRESSION_DEPTH`].
    #[error("the expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (each bracket, `? :`, and link of a chain of operators or `.` accesses counts); the limit is {MAX_EXPRESSION_DEPTH}: split it across `set` nodes")]
    TooDeep,
    /// On the values it would read, the expression could take more than
    /// [`MAX_EVALUATION_STEPS`] (see `expr/cost.rs`).
    #[error("`{expression}` could take about {steps} steps on these values ({size} items, nested {degree} deep in macros or list operations); the limit is {MAX_EVALUATION_STEPS}: read fewer items, or split the work across `set` nodes")]
    TooCostly {
        expression: String,
        size: u64,
        degree: u32,
        steps: u64,
    },
}

/// A compiled CEL expression and the variables it reads.
#[derive(Debug)]
pub struct Expression {
    source: String,
    program: cel::Program,
    variables: Vec<String>,
    /// The power of the data's size that bounds its steps (`cost::degree`).
    degree: u32,
}

impl Expression {
    /// Compiles `source`, listing the flow variables it reads (not the ones its macros bind).
    /// A source longer than [`MAX_EXPRESSION_CHARS`] or deeper than [`MAX_EXPRESSION_DEPTH`] is
    /// refused before it is parsed.
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        limits::check_source(source).map_err(|refusal| match refusal {
            limits::Refusal::TooLong(chars) => ExprError::TooLong { chars },
            limits::Refusal::TooDeep => ExprError::TooDeep,
            limits::Refusal::Lexical { at, problem } => ExprError::Syntax {
                expression: source.into(),
                message: format!("{problem} at character {at}"),
            },
        })?;
        limits::with_enough_stack(|| Self::parse(source))
    }

    /// Parses a source already within the limits, and checks the tree it gives.
    fn parse(source: &str) -> Result<Self, ExprError> {
        let program = ENV.compile(source).map_err(|e| ExprError::Syntax {
            expression: source.into(),
            message: describe(&e),
        })?;
        if limits::tree_depth(program.expression()) > MAX_EXPRESSION_DEPTH {
            return Err(ExprError::TooDeep);
        }
        let bound = macro_bindings(program.expression());
        let mut variables: Vec<String> = program
            .references()
            .variables()
            .into_iter()
            .filter(|v| !bound.contains(v))
            .map(str::to_owned)
            .collect();
        variables.sort();
        let degree = cost::degree(program.expression());
        Ok(Self {
            source: source.into(),
            program,
            variables,
            degree,
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

    /// Evaluates against `vars`; a variable not set yet reads as `null`. Refused, without
    /// running, when it could take more than [`MAX_EVALUATION_STEPS`] on these values.
    pub fn evaluate(&self, vars: &Variables) -> Result<Value, ExprError> {
        if self.degree > 1 {
            let size = self
                .variables
                .iter()
                .filter_map(|name| vars.get(name))
                .map(cost::size_of)
                .fold(0u64, u64::saturating_add);
            let steps = cost::steps(size, self.degree);
            if steps > MAX_EVALUATION_STEPS {
                return Err(ExprError::TooCostly {
                    expression: self.source.clone(),
                    size,
                    degree: self.degree,
                    steps,
                });
            }
        }
        limits::with_enough_stack(|| self.evaluate_here(vars))
    }

    fn evaluate_here(&self, vars: &Variables) -> Result<Value, ExprError> {
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
        limits::check_value(&result).map_err(failed)?;
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

/// What CEL's parser reported, without its source snippet: each error's message and where it is.
fn describe(errors: &cel::ParseErrors) -> String {
    let described: Vec<String> = errors
        .errors
        .iter()
        .take(3)
        .map(|e| match e.pos {
            (line, column) if line > 0 && column > 0 => {
                format!("{} (line {line}, column {column})", e.msg)
            }
            _ => e.msg.clone(),
        })
        .collect();
    described.join("; ")
}

/// Names that comprehension macros (`exists(x, ..)`, `map(x, ..)`) bind inside the expression.
fn macro_bindings(root: &IdedExpr) -> Vec<&str> {
    let mut bound = Vec::new();
    let mut pending = vec![root];
    while let Some(expr) = pending.pop() {
        if let Expr::Comprehension(c) = &expr.expr {
            bound.push(c.iter_var.as_str());
            bound.extend(c.iter_var2.as_deref());
            bound.push(c.accu_var.as_str());
        }
        push_children(expr, &mut pending);
    }
    bound
}

/// Pushes the expressions directly under `expr` onto `out`.
fn push_children<'a>(expr: &'a IdedExpr, out: &mut Vec<&'a IdedExpr>) {
    match &expr.expr {
        Expr::Comprehension(c) => out.extend([
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]),
        Expr::Call(call) => {
            out.extend(call.target.as_deref());
            out.extend(&call.args);
        }
        Expr::List(list) => out.extend(&list.elements),
        Expr::Map(map) => map.entries.iter().for_each(|e| push_entry(&e.expr, out)),
        Expr::Struct(s) => s.entries.iter().for_each(|e| push_entry(&e.expr, out)),
        Expr::Select(select) => out.push(&select.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn push_entry<'a>(entry: &'a EntryExpr, out: &mut Vec<&'a IdedExpr>) {
    match entry {
        EntryExpr::StructField(f) => out.push(&f.value),
        EntryExpr::MapEntry(m) => out.extend([&m.key, &m.value]),
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

    /// `n` copies of `term` joined by `op`.
    fn chain(term: &str, op: &str, n: usize) -> String {
        vec![term; n].join(op)
    }

    /// `inner` inside `n` pairs of parentheses.
    fn nested(inner: &str, n: usize) -> String {
        format!("{}{inner}{}", "(".repeat(n), ")".repeat(n))
    }

    #[test]
    fn sources_past_the_length_limit_are_refused_before_parsing() {
        for source in [
            chain("choice == '1'", " || ", 10_000),
            chain("choice == '1'", " || ", 2_000),
            nested("choice", 10_000),
            "x".repeat(MAX_EXPRESSION_CHARS + 1),
        ] {
            let chars = source.chars().count();
            assert_eq!(
                Expression::compile(&source).map(|_| ()),
                Err(ExprError::TooLong { chars })
            );
        }
        let error = Expression::compile(&chain("a", " + ", 3_000)).expect_err("too long");
        assert!(error.to_string().contains("the limit is 4096"), "{error}");
    }

    #[test]
    fn a_syntax_error_past_character_65535_is_an_error_not_a_panic() {
        let source = format!("'{}' == )", "x".repeat(70_000));
        assert_eq!(
            Expression::compile(&source).map(|_| ()),
            Err(ExprError::TooLong { chars: 70_007 })
        );
        // Within the limit the position is given, without CEL's snippet of the source.
        let source = format!("'{}' == == 1", "x".repeat(MAX_EXPRESSION_CHARS - 12));
        match Expression::compile(&source) {
            Err(ExprError::Syntax { message, .. }) => {
                assert!(message.contains("line 1, column"), "{message}");
                assert!(!message.contains('\n'), "{message}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn nesting_past_the_depth_limit_is_refused_before_parsing() {
        for source in [
            nested("choice", MAX_EXPRESSION_DEPTH),
            format!("{}1{}", "[".repeat(100), "]".repeat(100)),
            format!("{}1{}", "{'a': ".repeat(70), "}".repeat(70)),
            format!("{}choice{}", "size(".repeat(70), ")".repeat(70)),
            chain("attempts", " + ", 70),
            chain("attempts", " < ", 70),
            format!("customer{}", ".tier".repeat(70)),
            format!("customer{}", "[0]".repeat(70)),
            format!("{}true", "choice == '1' ? false : ".repeat(70)),
        ] {
            assert_eq!(
                Expression::compile(&source).map(|_| ()),
                Err(ExprError::TooDeep),
                "{source}"
            );
        }
        let error = Expression::compile(&nested("a", 500)).expect_err("too deep");
        assert!(error.to_string().contains("64 levels"), "{error}");
    }

    #[test]
    fn macros_that_nest_past_the_depth_limit_are_refused_after_parsing() {
        // Each `map` adds two levels to the source but three to the tree it expands into.
        let source = format!("{}1{}", "[1].map(o, ".repeat(25), ")".repeat(25));
        assert_eq!(limits::check_source(&source), Ok(()));
        assert_eq!(
            Expression::compile(&source).map(|_| ()),
            Err(ExprError::TooDeep)
        );
    }

    #[test]
    fn long_or_chains_and_deep_but_allowed_nesting_compile() {
        // `||` and `&&` chains become balanced trees: 200 alternatives nest about ten levels.
        let menu = chain("choice == '1'", " || ", 200);
        assert!(menu.len() <= MAX_EXPRESSION_CHARS);
        let e = Expression::compile(&menu).expect("a long menu compiles");
        assert_eq!(e.evaluate_bool(&vars()), Ok(true));
        let deepest = nested("choice == '1'", MAX_EXPRESSION_DEPTH - 2);
        let e = Expression::compile(&deepest).expect("the deepest allowed nesting compiles");
        assert_eq!(e.evaluate_bool(&vars()), Ok(true));
    }

    #[test]
    fn brackets_inside_strings_and_comments_are_not_nesting() {
        let parens = "(".repeat(200);
        for source in [
            format!("choice == '{parens}'"),
            format!("choice == \"{parens}\""),
            format!(r"choice == r'\' || choice == '{parens}'"),
            format!("choice == '''{parens}\n{parens}'''"),
            format!("choice == b'{parens}' || choice == '1'"),
            format!("choice == '1' // {parens}"),
            format!(r"choice == 'it\'s {parens}'"),
        ] {
            if let Err(e) = Expression::compile(&source) {
                panic!("{source}: {e}");
            }
        }
    }

    #[test]
    fn what_cels_lexer_rejects_is_a_syntax_error_naming_the_character() {
        for (source, problem) in [
            ("choice == 'open", "never closed at character 11"),
            (
                r"choice == '\q'",
                "escape sequence CEL does not know at character 12",
            ),
            ("choice # 1", "unexpected character '#' at character 8"),
            ("(choice == '1'", "`(` is never closed at character 1"),
            ("choice == '1')", "`)` closes nothing at character 14"),
            ("[choice)", "`)` where `]` was expected at character 8"),
        ] {
            match Expression::compile(source) {
                Err(ExprError::Syntax { message, .. }) => {
                    assert!(message.contains(problem), "{source}: {message}")
                }
                other => panic!("{source}: expected a syntax error, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_deepest_allowed_expression_runs_on_a_small_thread_stack() {
        // CEL recurses per level: on the 128 KiB of this thread alone it would overflow.
        let lists = MAX_EXPRESSION_DEPTH - 3;
        let deepest = format!(
            "{}choice{} == [] ? 1 : 2",
            "[".repeat(lists),
            "]".repeat(lists)
        );
        let outcome = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let e = Expression::compile(&deepest).map_err(|e| e.to_string())?;
                e.evaluate(&vars()).map_err(|e| e.to_string())
            })
            .expect("thread")
            .join()
            .expect("no panic");
        assert_eq!(outcome, Ok(json!(2)));
    }

    #[test]
    fn results_past_the_value_limits_are_evaluation_errors() {
        // What `set x = [x]` in a loop would build, one wrap short of the limit.
        let mut deep = json!("bottom");
        for _ in 0..MAX_VALUE_DEPTH - 2 {
            deep = json!([deep]);
        }
        let mut v = Variables::new();
        v.insert("x".into(), deep);
        let wrap = Expression::compile("[x]").expect("compiles");
        assert!(wrap.evaluate(&v).is_ok(), "at the limit");
        let wrap_twice = Expression::compile("[[x]]").expect("compiles");
        match wrap_twice.evaluate(&v) {
            Err(ExprError::Evaluation { message, .. }) => {
                assert!(message.contains("128 levels"), "{message}")
            }
            other => panic!("expected an evaluation error, got {other:?}"),
        }
        // What `set x = x + x` in a loop would build, and a list repeating a big value.
        v.insert("x".into(), json!("y".repeat(MAX_VALUE_BYTES / 2 + 1)));
        for source in ["x + x", "[1, 2, 3].map(i, x)"] {
            match Expression::compile(source).expect("compiles").evaluate(&v) {
                Err(ExprError::Evaluation { message, .. }) => {
                    assert!(message.contains("1048576 bytes"), "{source}: {message}")
                }
                other => panic!("{source}: expected an evaluation error, got {other:?}"),
            }
        }
        assert!(Expression::compile("size(x)")
            .expect("compiles")
            .evaluate(&v)
            .is_ok());
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
