//! The admin API's error paths, in-process (the router over a node built
//! from a small config): every bad request gets its own status and a reason
//! a person can act on, never a server path, and changes nothing.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use tower::ServiceExt;

mod common;

struct Api {
    node: std::sync::Arc<hookline::call::Node>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let node = common::node(dir.path()).await;
        Api { node, _dir: dir }
    }

    /// One request with the node's token (or `token`), Host `localhost`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost")
            // What axum's server puts on each request: the peer's address.
            .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = hookline::api::router(self.node.clone())
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn change(
        &self,
        method: Method,
        path: &str,
        body: &'static [u8],
    ) -> (StatusCode, String) {
        let token = self.node.api_token.clone();
        self.send(method, path, Some(&token), body).await
    }
}

/// A reason that names no place on the server's disk.
fn clean(reason: &str, data: &std::path::Path) {
    assert!(!reason.is_empty(), "an error without a reason");
    assert!(
        !reason.contains(&*data.to_string_lossy()) && !reason.contains("/tmp/"),
        "the reply shows a server path: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_and_a_reason() {
    let api = Api::new().await;
    let data = api.node.data_dir.clone();

    // Changes without a token, or with a wrong one: 401, with how to fix it.
    let (s, why) = api
        .send(Method::PUT, "/api/agents/201/dnd", None, "on")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("token"), "{why}");
    let (s, _) = api
        .send(Method::PUT, "/api/agents/201/dnd", Some("wrong"), "on")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A page on another site naming this node (DNS rebinding): refused.
    let resp = hookline::api::router(api.node.clone())
        .oneshot(
            Request::get("/api/calls")
                .header(header::HOST, "evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);

    // Agent switches: on or off, for agents the node knows.
    let (s, why) = api
        .change(Method::PUT, "/api/agents/201/dnd", b"maybe")
        .await;
    assert_eq!(
        (s, why.trim()),
        (StatusCode::BAD_REQUEST, "body must be on or off")
    );
    let (s, _) = api.change(Method::PUT, "/api/agents/201/dnd", b"on").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for path in ["/api/agents/nobody/dnd", "/api/agents/nobody/pause"] {
        let (s, why) = api.change(Method::PUT, path, b"on").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {why}");
    }
    let (_, agents) = api.send(Method::GET, "/api/agents", None, "").await;
    assert!(
        !agents.contains("nobody"),
        "an unknown agent got a state: {agents}"
    );
    let (s, _) = api
        .change(Method::POST, "/api/agents/201/conversions", b"lots")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .change(Method::POST, "/api/agents/201/conversions", b"100000")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Lists: a limit that is not a number is a 400, not a default.
    let (s, _) = api
        .send(Method::GET, "/api/calls?limit=abc", None, "")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Prompts: not a WAV, an unknown upload, a path in the id.
    let (s, why) = api
        .change(Method::PUT, "/api/prompts/en/welcome", b"not a wav at all")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{why}");
    clean(&why, &data);
    let (s, why) = api
        .change(Method::DELETE, "/api/prompts/en/never-uploaded", b"")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{why}");
    clean(&why, &data);
    for path in [
        "/api/prompts/en/..%2F..%2Fhookline",
        "/api/prompts/..%2Fx/welcome",
    ] {
        let (s, why) = api.change(Method::PUT, path, b"RIFF").await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND,
            "{path}: {s} {why}"
        );
        clean(&why, &data);
    }

    // Deploys: not a component, or a name the node does not know.
    let (s, why) = api
        .change(Method::PUT, "/api/plugins/hostile", b"\0asm garbage")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
    assert!(why.contains("not a WebAssembly component"), "{why}");
    clean(&why, &data);
    let (s, why) = api
        .change(Method::PUT, "/api/plugins/no-such-plugin", b"\0asm")
        .await;
    assert!(s.is_client_error(), "{s} {why}");
    clean(&why, &data);

    // Nothing above changed what the node serves.
    let (s, plugins) = api.send(Method::GET, "/api/plugins", None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(plugins.contains("hostile"), "{plugins}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_browser_offers_are_refused_and_give_back_what_they_took() {
    let api = Api::new().await;
    let free = api.node.ports.free_count();
    let token = Some(common::BROWSER_TOKEN);
    // No token, a wrong one: 401.
    let (s, _) = api
        .send(Method::POST, "/webrtc/call/100", None, "v=0")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Not UTF-8, too large, not an offer a browser would send: refused, and
    // the RTP port each one took for a moment is back in the pool.
    let (s, why) = api
        .send(
            Method::POST,
            "/webrtc/call/100",
            token,
            vec![0xffu8, 0xfe, 0xfd],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{why}");
    let (s, _) = api
        .send(Method::POST, "/webrtc/call/100", token, vec![b'a'; 1 << 20])
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    for offer in [
        "v=0\r\n",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        "garbage",
    ] {
        let (s, why) = api
            .send(Method::POST, "/webrtc/call/100", token, offer)
            .await;
        assert!(s.is_client_error(), "{offer:?}: {s} {why}");
    }
    assert_eq!(api.node.ports.free_count(), free, "an RTP port was kept");
    // Hanging up a call that is not there: 404.
    let (s, _) = api
        .send(Method::DELETE, "/webrtc/call/webrtc-0000", token, "")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
