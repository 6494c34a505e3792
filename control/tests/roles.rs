//! Every route × every role, on SQLite and PostgreSQL: each role can do exactly what the table
//! in `api/mod.rs` says (anything more is a 403).

use reqwest::StatusCode;

use crate::support::http::Api;
use crate::support::on_both_engines;
use crate::support::route_table::{body_for, fill, quiet_config, route_world, routes, ROLES};
use crate::support::{Backend, TestDb};
use freya_control::server::ControlPlane;

async fn each_role_can_do_exactly_what_it_should(backend: Backend) {
    let db = TestDb::new(backend).await;
    let control = ControlPlane::start(&quiet_config(&db.url))
        .await
        .expect("control starts");
    let api = Api::of(&control);
    let mut failures = Vec::new();
    for route in routes() {
        for (n, role) in ROLES.iter().enumerate() {
            let w = route_world(&control).await;
            let body = body_for(&control, &route, &w).await;
            let path = fill(route.path, &w);
            let answer = api.call(route.method, &path, &w.keys[n], body).await;
            let expected = if *role >= route.least {
                route.success
            } else {
                StatusCode::FORBIDDEN
            };
            if answer.status != expected {
                failures.push(format!(
                    "{} {} as {}: expected {expected}, got {} {}",
                    route.method,
                    route.path,
                    role.as_str(),
                    answer.status,
                    answer.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(each_role_can_do_exactly_what_it_should);
