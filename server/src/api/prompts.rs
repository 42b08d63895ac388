//! Prompts over the API: an operator uploads a recording (an auto-responder
//! message, a holiday greeting) and the next call plays it; no restart, no
//! file access on the node. Uploads live in the node's data directory and
//! take precedence over recorded overrides and rendered prompts.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::call::Node;
use crate::media::prompt::{Prompt, PromptSet, RATE};
use crate::prompts::{prompt_path, uploaded_ids, uploaded_path, valid_id};

/// Largest upload accepted (a 10-minute 16-bit 48 kHz stereo WAV is 110 MiB;
/// prompts are short, and this bounds what one request can make the node hold).
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;
/// Longest prompt kept (at 8 kHz, about 9.6 MB of samples in three forms).
const MAX_SECONDS: usize = 600;

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// The language's live prompt set (None: the node does not speak it).
fn set_of<'a>(node: &'a Node, lang: &str) -> Option<&'a Arc<PromptSet>> {
    if lang == node.config.prompts.language {
        Some(&node.prompts)
    } else {
        node.prompt_sets.get(lang)
    }
}

fn no_language(lang: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no prompts in language {lang:?} (prompts.languages)"),
    )
}

/// `PUT /api/prompts/{lang}/{id}` with a WAV body (any rate, mono or
/// stereo, 8-32 bit): checked by decoding it, stored, and played from the
/// next use on. `201` with its duration.
pub async fn upload(
    State(node): State<Arc<Node>>,
    Path((lang, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(set) = set_of(&node, &lang).cloned() else {
        return no_language(&lang);
    };
    if !valid_id(&id) {
        return error(
            StatusCode::BAD_REQUEST,
            "a prompt id is 1-64 of a-z, 0-9, _ and -",
        );
    }
    let path = uploaded_path(&node.data_dir, &lang, &id);
    let loaded = crate::plugin::blocking(move || -> Result<Prompt, (StatusCode, String)> {
        // Decoded from memory first (header checked before any allocation it
        // asks for): a bad upload never touches the disk or a good prompt.
        let p = Prompt::decode(&id, std::io::Cursor::new(&body[..])).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("not a usable WAV: {}", e.reason()),
            )
        })?;
        if p.pcm.len() > MAX_SECONDS * RATE as usize {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("longer than {MAX_SECONDS} s"),
            ));
        }
        let saved = (|| -> std::io::Result<()> {
            let dir = path.parent().expect("uploaded_path has a directory");
            std::fs::create_dir_all(dir)?;
            let part = path.with_extension("wav.part");
            std::fs::write(&part, &body)?;
            std::fs::rename(&part, &path)
        })();
        if let Err(e) = saved {
            // The path is for the operator's log, never for the client.
            tracing::warn!("saving uploaded prompt {}: {e}", path.display());
            return Err((
                StatusCode::INSUFFICIENT_STORAGE,
                "cannot store the prompt".into(),
            ));
        }
        Ok(p)
    })
    .await;
    match loaded {
        Ok(Ok(prompt)) => {
            let duration_ms = prompt.pcm.len() as u64 * 1000 / RATE as u64;
            let id = prompt.id.clone();
            set.insert(prompt);
            tracing::info!("prompt {id:?} ({lang}) uploaded, {duration_ms} ms");
            (
                StatusCode::CREATED,
                Json(serde_json::json!({ "id": id, "language": lang, "duration_ms": duration_ms })),
            )
                .into_response()
        }
        Ok(Err((status, message))) => error(status, message),
        Err(e) => {
            tracing::warn!("prompt upload: {e:?}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "upload failed")
        }
    }
}

/// `DELETE /api/prompts/{lang}/{id}`: removes an upload; the recorded or
/// rendered prompt of that id (if any) plays again.
pub async fn remove(
    State(node): State<Arc<Node>>,
    Path((lang, id)): Path<(String, String)>,
) -> Response {
    let Some(set) = set_of(&node, &lang).cloned() else {
        return no_language(&lang);
    };
    if !valid_id(&id) {
        return error(StatusCode::NOT_FOUND, "no such upload");
    }
    let path = uploaded_path(&node.data_dir, &lang, &id);
    if !path.exists() {
        return error(StatusCode::NOT_FOUND, "no such upload");
    }
    let recorded = node.config.resolve(&node.config.prompts.recorded);
    let data = node.data_dir.clone();
    let id2 = id.clone();
    let back = crate::plugin::blocking(move || -> Result<Option<Prompt>, String> {
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        prompt_path(&data, &recorded, &lang, &id2)
            .map(|p| Prompt::load(&id2, &p).map_err(|e| e.to_string()))
            .transpose()
    })
    .await;
    let failed = match back {
        Ok(Ok(back)) => {
            match back {
                Some(prompt) => set.insert(prompt),
                None => set.remove(&id),
            }
            return StatusCode::NO_CONTENT.into_response();
        }
        Ok(Err(e)) => e,
        Err(e) => format!("{e:?}"),
    };
    tracing::warn!("removing prompt upload: {failed}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "cannot remove the upload",
    )
}

/// `GET /api/prompts`: each language's prompt ids, and which were uploaded.
pub async fn list(State(node): State<Arc<Node>>) -> Response {
    let mut langs = vec![node.config.prompts.language.clone()];
    langs.extend(node.prompt_sets.keys().cloned());
    langs.sort();
    langs.dedup();
    let out: serde_json::Map<String, serde_json::Value> = langs
        .into_iter()
        .filter_map(|lang| {
            let set = set_of(&node, &lang)?;
            let mut uploaded = uploaded_ids(&node.data_dir, &lang);
            uploaded.sort();
            let v = serde_json::json!({ "prompts": set.ids(), "uploaded": uploaded });
            Some((lang, v))
        })
        .collect();
    Json(out).into_response()
}
