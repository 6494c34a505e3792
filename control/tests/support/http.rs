//! A small JSON client for API tests: every call returns the status, the parsed body (or
//! `null`) and the response headers, so a test reads as a table of requests and answers.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

use freya_control::server::ControlPlane;
use freya_control::store::{Role, WorkspaceScope};

/// An answer: status, JSON body (`null` when not JSON) and headers.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    /// The `Content-Type` header (empty when absent): problem+json or not.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A client for one control plane.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    /// A client for `control`'s REST API.
    pub fn of(control: &ControlPlane) -> Self {
        Self {
            base: format!("http://{}", control.http_addr),
            http: reqwest::Client::new(),
        }
    }

    /// `method path` with a bearer credential (none when empty), extra headers and a body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !bearer.is_empty() {
            request = request.bearer_auth(bearer);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    /// `send` without extra headers.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Answer {
        self.send(method, path, bearer, &[], body).await
    }

    /// `call`, failing the test (naming the request and showing the body) unless the answer
    /// has `status`; the answer's body, for what the test reads next.
    pub async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Value {
        let answer = self.call(method, path, bearer, body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        answer.body
    }

    /// [`Api::expect`] for a refusal: the answer must also name `field` first among its
    /// `errors`, as a client shows the mistake beside the field.
    pub async fn refused_naming(
        &self,
        status: u16,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
        field: &str,
    ) {
        let refused = self.expect(status, method, path, bearer, body).await;
        assert_eq!(
            refused["errors"][0]["field"], field,
            "{method} {path}: {refused}"
        );
    }

    /// `POST path` with `body` as `key`, which must answer 201; the created resource.
    pub async fn create(&self, path: &str, key: &str, body: Value) -> Value {
        self.expect(201, "POST", path, key, Some(body)).await
    }

    /// Each request of `steps` in order, each answer checked like [`Api::expect`]: a table of
    /// what a caller may and may not do.
    pub async fn expect_each(&self, steps: &[(&str, &str, &str, Option<Value>, u16)]) {
        for (method, path, bearer, body, status) in steps {
            self.expect(*status, method, path, bearer, body.clone())
                .await;
        }
    }

    /// A workspace created through the API by `token` (a person's), who becomes its owner;
    /// its id.
    pub async fn new_workspace(&self, token: &str, name: &str) -> String {
        let body = serde_json::json!({ "name": name });
        let created = self.create("/v1/workspaces", token, body).await;
        created["id"].as_str().expect("id").to_owned()
    }
}

/// A user with a password, made directly in the store.
pub async fn make_user(control: &ControlPlane, email: &str, password: &str) -> String {
    let hash = freya_control::hash_password(password).expect("hash");
    control
        .store
        .create_user(email, email, &hash)
        .await
        .expect("user")
}

/// Logs in and returns the token.
pub async fn login(api: &Api, email: &str, password: &str) -> String {
    let answer = try_login(api, email, password).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["token"].as_str().expect("token").to_owned()
}

/// A workspace with one API key per role, returned owner first.
pub async fn workspace_with_keys(control: &ControlPlane, name: &str) -> (String, [String; 4]) {
    let ws = control
        .store
        .create_workspace(name)
        .await
        .expect("workspace");
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let mut keys = Vec::new();
    for role in [Role::Owner, Role::Admin, Role::Editor, Role::Viewer] {
        keys.push(
            control
                .store
                .create_api_key(&scope, role.as_str(), role)
                .await
                .expect("key")
                .key,
        );
    }
    (ws, keys.try_into().expect("four keys"))
}

/// A control plane on a fresh database of `backend`, and a client of its API.
pub async fn started(
    backend: super::Backend,
) -> (super::TestDb, freya_control::server::ControlPlane, Api) {
    let (db, control) = super::control_plane(backend).await;
    let api = Api::of(&control);
    (db, control, api)
}

/// A person's login with `email` and `password`, as the dashboard sends it.
pub async fn try_login(api: &Api, email: &str, password: &str) -> Answer {
    let body = serde_json::json!({"email": email, "password": password});
    api.call("POST", "/v1/auth/login", "", Some(body)).await
}
