//! How long an expression may run. CEL always ends, but not always soon: a macro (`all`,
//! `exists`, `map`, `filter`) runs its body once per item, so a body that is itself linear in
//! the data — another macro, `in` on a list, `==` between two lists, `+` (which copies lists and
//! strings) or a string function — makes the whole quadratic, and `x.all(a, x.all(b, true))`
//! over a 10,000-item function answer took 32 s of an edge's CPU. The `cel` crate has no step budget, so the cost is bounded before it runs:
//!
//! - when compiled, the expression gets a **degree** ([`degree`]): the power of the data's size
//!   that bounds its steps (a macro adds one to its body's; a call that may be linear in its
//!   operands counts one; a lone name, literal, field access, index, arithmetic, logic, and a
//!   comparison with a literal count nothing);
//! - before each evaluation, the values it reads are measured ([`size_of`], items and words of
//!   text) and `size ^ degree` must stay within [`MAX_EVALUATION_STEPS`].
//!
//! The estimate errs towards refusing (a `+` of two variables counts as linear even when they are
//! numbers). A refused evaluation is an error the flow handles like any other.

use cel::common::ast::{operators, Expr, IdedExpr};
use serde_json::Value;

/// The most steps, roughly, one evaluation may take: about 0.2 s of an optimised edge's CPU for
/// the costliest shape measured (a macro nested in a macro over 1,000 items).
pub const MAX_EVALUATION_STEPS: u64 = 1_000_000;

/// Calls that take constant time whatever their operands hold.
const CONSTANT_CALLS: &[&str] = &[
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::CONDITIONAL,
    operators::NEGATE,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::INDEX,
    operators::OPT_INDEX,
    operators::OPT_SELECT,
    operators::NOT_STRICTLY_FALSE,
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "dyn",
];

/// Comparisons: linear in two variable operands (lists, maps, strings), constant when one side
/// is a literal, which bounds the work by its own (short) length.
const COMPARISONS: &[&str] = &[
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
];

/// The power of the data's size that bounds the steps of `expr`. Recursive: the tree is at most
/// `MAX_EXPRESSION_DEPTH` deep when this runs.
pub(super) fn degree(expr: &IdedExpr) -> u32 {
    degree_within(expr, None)
}

/// [`degree`] inside the loop step of a macro whose accumulator is `accumulator`: `map` and
/// `filter` add each item with `accumulator + [item]`, which the `cel` crate appends in place
/// (measured linear: 40,000 items in 25 ms), so that `+` costs nothing more.
fn degree_within(expr: &IdedExpr, accumulator: Option<&str>) -> u32 {
    let degree = |e: &IdedExpr| degree_within(e, accumulator);
    match &expr.expr {
        Expr::Comprehension(c) => {
            let step = degree_within(&c.loop_step, Some(&c.accu_var));
            let per_item = degree(&c.loop_cond).max(step);
            degree(&c.iter_range)
                .max(degree(&c.accu_init))
                .max(per_item + 1)
                .max(degree(&c.result))
        }
        Expr::Call(call) => {
            let operands = call
                .target
                .iter()
                .map(|t| degree(t))
                .chain(call.args.iter().map(&degree))
                .max()
                .unwrap_or(0);
            let name = call.func_name.as_str();
            let appends = name == operators::ADD
                && accumulator.is_some()
                && matches!(call.args.first().map(|a| &a.expr),
                            Some(Expr::Ident(id)) if Some(id.as_str()) == accumulator);
            let constant = appends
                || CONSTANT_CALLS.contains(&name)
                || (COMPARISONS.contains(&name) && call.args.iter().any(is_scalar_literal));
            if constant {
                operands
            } else {
                operands.max(1)
            }
        }
        Expr::List(list) => list.elements.iter().map(&degree).max().unwrap_or(0),
        Expr::Map(_) | Expr::Struct(_) => {
            let mut children = Vec::new();
            super::push_children(expr, &mut children);
            children.into_iter().map(&degree).max().unwrap_or(0)
        }
        Expr::Select(select) => degree(&select.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 0,
    }
}

fn is_scalar_literal(expr: &IdedExpr) -> bool {
    matches!(expr.expr, Expr::Literal(_))
}

/// The size of a value for the estimate: one per item, entry or scalar, plus a word (8 bytes)
/// of each string. Without recursion, as values may nest deeply.
pub(super) fn size_of(value: &Value) -> u64 {
    let mut size = 0u64;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        size = size.saturating_add(1);
        match value {
            Value::String(text) => size = size.saturating_add(text.len() as u64 / 8),
            Value::Array(items) => pending.extend(items),
            Value::Object(entries) => {
                for (key, item) in entries {
                    size = size.saturating_add(key.len() as u64 / 8);
                    pending.push(item);
                }
            }
            _ => {}
        }
    }
    size
}

/// `size ^ degree`, saturating.
pub(super) fn steps(size: u64, degree: u32) -> u64 {
    size.max(1).saturating_pow(degree)
}

#[cfg(test)]
mod tests {
    use super::super::{ExprError, Expression};
    use super::*;
    use crate::workflow::Variables;

    fn degree_of(source: &str) -> u32 {
        Expression::compile(source).expect("compiles").degree
    }

    fn numbers(n: usize) -> Variables {
        let mut vars = Variables::new();
        vars.insert("x".into(), serde_json::json!((0..n).collect::<Vec<_>>()));
        vars.insert("y".into(), serde_json::json!([1, 2, 3]));
        vars
    }

    #[test]
    fn one_pass_over_the_data_is_linear() {
        for source in [
            "x.all(a, a >= 0)",
            "x.map(a, a * 2)",
            "x.filter(a, a > 5)",
            "x.exists_one(a, a == 5)",
            "x.exists(a, a.name == 'bob' && a.age > 3)",
            "size(x) > 3 && y[0] == 1",
            "name + ' ' + surname",
        ] {
            assert!(degree_of(source) <= 1, "{source}: {}", degree_of(source));
        }
    }

    #[test]
    fn work_per_item_that_is_itself_linear_raises_the_degree() {
        for (source, expected) in [
            ("x.all(a, x.all(b, true))", 2),
            ("x.exists(a, a in y)", 2),
            ("x.map(a, x + x)", 2),
            ("x.filter(a, a == y)", 2),
            ("x.all(a, x.all(b, x.all(c, b == c)))", 4),
        ] {
            assert_eq!(degree_of(source), expected, "{source}");
        }
    }

    #[test]
    fn a_nested_macro_over_a_large_answer_is_refused_without_running() {
        // Measured at 32 s of CPU before this check, on 10,000 items.
        let hostile = Expression::compile("x.all(a, x.all(b, true))").expect("compiles");
        match hostile.evaluate(&numbers(10_000)) {
            Err(ExprError::TooCostly {
                size,
                degree,
                steps,
                ..
            }) => {
                assert_eq!(degree, 2);
                assert!(size > 10_000, "{size}");
                assert!(steps > MAX_EVALUATION_STEPS, "{steps}");
            }
            other => panic!("refused as too costly, not {other:?}"),
        }
        let message = hostile
            .evaluate(&numbers(10_000))
            .expect_err("refused")
            .to_string();
        assert!(message.contains("the limit is 1000000"), "{message}");
        // The same expression on a small list runs.
        assert_eq!(
            hostile.evaluate(&numbers(100)).expect("runs"),
            serde_json::json!(true)
        );
    }

    #[test]
    fn a_linear_expression_runs_on_the_largest_values() {
        let linear = Expression::compile("x.all(a, a >= 0)").expect("compiles");
        assert_eq!(
            linear.evaluate(&numbers(100_000)).expect("runs"),
            serde_json::json!(true)
        );
    }

    #[test]
    fn text_counts_by_the_word() {
        assert_eq!(size_of(&serde_json::json!("")), 1);
        assert_eq!(size_of(&serde_json::json!("x".repeat(80))), 11);
        assert_eq!(size_of(&serde_json::json!({"k": [1, 2]})), 4);
        assert_eq!(steps(0, 3), 1);
        assert_eq!(steps(u64::MAX, 2), u64::MAX);
    }
}
