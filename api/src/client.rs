//! A small client of Retrain's REST API, shared by the demo and the operator
//! commands (`retrain runs ...`, `retrain models ...`).

use crate::keys::Secret;
use serde_json::{Value, json};
use std::time::Duration;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service could not be reached or answered garbage.
    #[error("cannot reach the service: {0}")]
    Http(#[from] reqwest::Error),
    /// The service refused, in its error shape.
    #[error("{status} {code}: {message}")]
    Api { status: u16, code: String, message: String },
    /// A file to upload could not be read.
    #[error("cannot read the file: {0}")]
    File(std::io::Error),
}

/// A client bound to one service address, with the admin token if known,
/// and the client key its predictions and feedback carry, if any.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<Secret>,
    key: Option<Secret>,
}

impl Client {
    /// # Panics
    /// Never in practice: building a reqwest client without TLS cannot fail.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .expect("an HTTP client");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(Secret::new),
            key: None,
        }
    }

    /// The same client, sending `key` with its predictions and feedback.
    #[must_use]
    pub fn with_key(&self, key: &str) -> Self {
        Self {
            key: Some(Secret::new(key)),
            ..self.clone()
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn answer(response: reqwest::Response) -> Result<(u16, Value), ClientError> {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            return Err(ClientError::Api {
                status,
                code: body["error"]["code"].as_str().unwrap_or("unknown").to_owned(),
                message: body["error"]["message"].as_str().unwrap_or("no message").to_owned(),
            });
        }
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let response = self.http.get(self.url(path)).send().await?;
        Ok(Self::answer(response).await?.1)
    }

    async fn post(&self, path: &str, body: &Value, admin: bool) -> Result<(u16, Value), ClientError> {
        let mut request = self.http.post(self.url(path)).json(body);
        if admin {
            request = self.as_admin(request);
        } else if let Some(key) = &self.key {
            request = request.bearer_auth(key.expose());
        }
        Self::answer(request.send().await?).await
    }

    /// Streams the file at `file` to `path` (an import), printing progress to
    /// stderr for files over 16 MiB; the upload has no time limit.
    ///
    /// # Errors
    /// An unreadable file, or as the service answers.
    pub async fn upload(&self, path: &str, file: &std::path::Path, content_type: &str) -> Result<Value, ClientError> {
        use futures_util::TryStreamExt;
        let opened = tokio::fs::File::open(file).await.map_err(ClientError::File)?;
        let size = opened.metadata().await.map_err(ClientError::File)?.len();
        let mut sent = 0u64;
        let mut reported = 0u64;
        let stream = tokio_util::io::ReaderStream::new(opened).inspect_ok(move |chunk| {
            sent += chunk.len() as u64;
            if size > 16 << 20 && (sent - reported >= size / 10 || sent == size) {
                reported = sent;
                eprintln!("uploaded {} of {} MiB", sent >> 20, size >> 20);
            }
        });
        self.upload_body(path, reqwest::Body::wrap_stream(stream), content_type)
            .await
    }

    /// Streams a data file and its golden file to `path` (an import) as
    /// `multipart/form-data` with the parts `data` and `golden`.
    ///
    /// # Errors
    /// An unreadable file, or as the service answers.
    pub async fn upload_with_golden(
        &self,
        path: &str,
        data: &std::path::Path,
        golden: &std::path::Path,
        content_type: &str,
    ) -> Result<Value, ClientError> {
        let part = |file: tokio::fs::File, name: &str| {
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file)))
                .file_name(name.to_owned())
                .mime_str(content_type)
        };
        let data = tokio::fs::File::open(data).await.map_err(ClientError::File)?;
        let golden = tokio::fs::File::open(golden).await.map_err(ClientError::File)?;
        let form = reqwest::multipart::Form::new()
            .part("data", part(data, "data")?)
            .part("golden", part(golden, "golden")?);
        let mut request = reqwest::Client::new().post(self.url(path)).multipart(form);
        request = self.as_admin(request);
        Ok(Self::answer(request.send().await?).await?.1)
    }

    /// Sends `body` to `path` (an import) with no time limit.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn upload_body(&self, path: &str, body: reqwest::Body, content_type: &str) -> Result<Value, ClientError> {
        let mut request = reqwest::Client::new()
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        request = self.as_admin(request);
        Ok(Self::answer(request.send().await?).await?.1)
    }

    /// `POST /models/{model}/predict` with an input (`features` or `text`).
    ///
    /// # Errors
    /// As the service answers.
    pub async fn predict_with(&self, model: &str, input: &Value) -> Result<Value, ClientError> {
        Ok(self.post(&format!("/models/{model}/predict"), input, false).await?.1)
    }

    /// `POST /models/{model}/feedback`; returns the feedback id.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn feedback_to(&self, model: &str, body: &Value) -> Result<i64, ClientError> {
        let (_, answer) = self.post(&format!("/models/{model}/feedback"), body, false).await?;
        Ok(answer["feedback_id"].as_i64().unwrap_or_default())
    }

    /// `request` with the admin token and the acting person, if a token is known.
    fn as_admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request
                .bearer_auth(token.expose())
                .header(crate::auth::ACTOR_HEADER, actor()),
            None => request,
        }
    }

    /// `POST /predict`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn predict(&self, features: &[f64]) -> Result<Value, ClientError> {
        Ok(self.post("/predict", &json!({"features": features}), false).await?.1)
    }

    /// `POST /feedback`; returns the feedback id.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn feedback(&self, body: &Value) -> Result<i64, ClientError> {
        let (_, answer) = self.post("/feedback", body, false).await?;
        Ok(answer["feedback_id"].as_i64().unwrap_or_default())
    }

    /// `POST /feedback/quarantine`; how many stored rows the rule covers.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn quarantine(&self, source: &str, reason: &str) -> Result<i64, ClientError> {
        let body = json!({"source": source, "reason": reason});
        let (_, answer) = self.post("/feedback/quarantine", &body, true).await?;
        Ok(answer["matched_rows"].as_i64().unwrap_or_default())
    }

    /// `GET /feedback/quarantine`: the model's rules (the default model's if `None`).
    ///
    /// # Errors
    /// As the service answers.
    pub async fn quarantines(&self, model: Option<&str>) -> Result<Value, ClientError> {
        let filter = model.map(|m| format!("?model={m}")).unwrap_or_default();
        self.get(&format!("/feedback/quarantine{filter}")).await
    }

    /// `POST /feedback/quarantine/{id}/release`; the rule with its release.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn release_quarantine(&self, id: i64, reason: &str) -> Result<Value, ClientError> {
        let body = json!({ "reason": reason });
        Ok(self
            .post(&format!("/feedback/quarantine/{id}/release"), &body, true)
            .await?
            .1)
    }

    /// `POST /keys`: a new key (the only time it is shown) and its record.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn create_key(&self, name: &str, scopes: &[String], model: Option<&str>) -> Result<Value, ClientError> {
        let body = json!({"name": name, "scopes": scopes, "model": model});
        Ok(self.post("/keys", &body, true).await?.1)
    }

    /// `GET /keys`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn keys(&self) -> Result<Value, ClientError> {
        let request = self.as_admin(self.http.get(self.url("/keys")));
        Ok(Self::answer(request.send().await?).await?.1)
    }

    /// `POST /keys/{name}/revoke`; the key's record.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn revoke_key(&self, name: &str) -> Result<Value, ClientError> {
        Ok(self.post(&format!("/keys/{name}/revoke"), &json!({}), true).await?.1)
    }

    /// `POST /runs`; the run and whether it is new.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn trigger(&self, model: Option<&str>, reason: Option<&str>) -> Result<(Value, bool), ClientError> {
        let (status, run) = self
            .post("/runs", &json!({"model": model, "reason": reason}), true)
            .await?;
        Ok((run, status == 201))
    }

    /// `GET /runs`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn runs(&self, status: Option<&str>, limit: u32, after: Option<&str>) -> Result<Value, ClientError> {
        let filter = status.map(|s| format!("&status={s}")).unwrap_or_default();
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        self.get(&format!("/runs?limit={limit}{filter}{after}")).await
    }

    /// `GET /runs/{id}`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn run(&self, id: &str) -> Result<Value, ClientError> {
        self.get(&format!("/runs/{id}")).await
    }

    /// `POST /runs/{id}/cancel` or `/retry`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn run_action(&self, id: &str, action: &str) -> Result<Value, ClientError> {
        Ok(self.post(&format!("/runs/{id}/{action}"), &json!({}), true).await?.1)
    }

    /// `GET /models`, the first 500 (the most a page holds).
    ///
    /// # Errors
    /// As the service answers.
    pub async fn models(&self) -> Result<Value, ClientError> {
        self.get("/models?limit=500").await
    }

    /// `GET /models/{name}`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn model(&self, name: &str) -> Result<Value, ClientError> {
        self.get(&format!("/models/{name}")).await
    }

    /// `PATCH /models/{name}`: changes a model's settings.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn change_model(&self, name: &str, change: &Value) -> Result<Value, ClientError> {
        let mut request = self.http.patch(self.url(&format!("/models/{name}"))).json(change);
        request = self.as_admin(request);
        Ok(Self::answer(request.send().await?).await?.1)
    }

    /// `GET /models/{name}/versions`, the newest 500 (the most a page holds).
    ///
    /// # Errors
    /// As the service answers.
    pub async fn versions(&self, name: &str) -> Result<Value, ClientError> {
        self.get(&format!("/models/{name}/versions?limit=500")).await
    }

    /// `POST /models/{name}/versions/{version}/promote`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn promote(&self, name: &str, version: i32, reason: &str) -> Result<Value, ClientError> {
        Ok(self
            .post(
                &format!("/models/{name}/versions/{version}/promote"),
                &json!({"reason": reason}),
                true,
            )
            .await?
            .1)
    }

    /// `POST /models/{name}/versions/{version}/reproduce`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn reproduce(&self, name: &str, version: i32) -> Result<Value, ClientError> {
        Ok(self
            .post(
                &format!("/models/{name}/versions/{version}/reproduce"),
                &json!({}),
                true,
            )
            .await?
            .1)
    }

    /// `GET /model/info`.
    ///
    /// # Errors
    /// As the service answers.
    pub async fn model_info(&self) -> Result<Value, ClientError> {
        self.get("/model/info").await
    }

    /// `GET /metrics`, as text.
    ///
    /// # Errors
    /// The service cannot be reached.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        Ok(self.http.get(self.url("/metrics")).send().await?.text().await?)
    }
}

/// Who the operator is, for the audit trail: `$USER@retrain-cli`.
fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    format!("{user}@retrain-cli")
}
