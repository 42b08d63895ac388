//! Queue callbacks: a caller who asked to be called back keeps their place
//! (see `queue.rs`); when it comes up, the node rings the queue's agents
//! first and, once one answers, calls the customer and connects them. A
//! callback not served within the queue's window ends with the node calling
//! the customer, apologising and taking a message.
//!
//! Each attempt is a call the node places: a session with no caller whose
//! first dial's answering leg (the agent, or the customer when the window
//! passed) becomes its own leg. Its record has the callee = the queue and
//! the rung legs as children, like any call.

use std::sync::Arc;
use std::time::Duration;

use super::dial::DialStatus;
use super::queue::{free_agents, say, PendingCallback, QueueConfig};
use super::session::{CallSession, SessionParts};
use super::targets::Target;
use super::{Node, SipCommand};
use crate::plugin::CallInfo;

/// How often kept places are looked at.
const TICK: Duration = Duration::from_secs(1);
/// A callback whose agents did not answer waits this long before its next try.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long the customer's phone rings.
const CUSTOMER_RING: Duration = Duration::from_secs(30);

/// Serves kept places as agents become free; runs for the node's life.
pub async fn run(node: Arc<Node>) {
    loop {
        tokio::time::sleep(TICK).await;
        if node.sip_tx.get().is_none() || node.draining.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        for q in &node.config.queues {
            let Some(group) = node.config.group(&q.group) else {
                continue;
            };
            let window = Duration::from_secs(q.callback_window_s);
            // Agents are looked up only when someone is kept for a callback.
            let free = if node.queues.has_callbacks(&q.name) {
                free_agents(&node, &group.members)
            } else {
                0
            };
            let work = node
                .queues
                .callback_work(&q.name, window, free, std::time::Instant::now());
            for cb in work.expire {
                tokio::spawn(expire(node.clone(), q.clone(), cb));
            }
            for cb in work.serve {
                tokio::spawn(serve(node.clone(), q.clone(), cb));
            }
        }
    }
}

/// Rings the queue's agents; once one answers, calls the customer and
/// connects them.
async fn serve(node: Arc<Node>, q: QueueConfig, cb: PendingCallback) {
    let Some(mut s) = placed_call(&node, &q, &cb) else {
        return node.queues.callback_retry(&q.name, &cb.id);
    };
    s.mark(&format!("callback:{}", q.name));
    let agents = Target::Extension(q.group.clone());
    let ring = Duration::from_secs(q.ring_s);
    let agent = s
        .dial_targets(&[agents], ring, Some(cb.number.clone()))
        .await;
    if !matches!(agent, Ok(ref o) if o.status == DialStatus::Completed) {
        s.mark("callback:no-agent");
        end(&node, &mut s, "callback-no-agent", 0);
        tokio::time::sleep(RETRY_AFTER).await;
        return node.queues.callback_retry(&q.name, &cb.id);
    }
    node.store.call_answered(&s.call_id);
    let intro = say(format!(
        "Callback to a customer who waited in the {} queue. Connecting you now.",
        q.name
    ));
    let customer = customer_target(&node, &cb.number);
    let caller_id = q.number.clone().unwrap_or_else(|| q.name.clone());
    let out = match s.play_items(&[intro], false).await {
        Ok(_) => {
            s.dial_targets(&[customer], CUSTOMER_RING, Some(caller_id))
                .await
        }
        Err(e) => Err(e),
    };
    let state = match out {
        Ok(o) if o.status == DialStatus::Completed => {
            let talk_ms = o.talk_seconds as u64 * 1000;
            node.queues.count(&q.name, |st| {
                st.answered += 1;
                st.talk_ms_total += talk_ms;
            });
            "answered"
        }
        Ok(_) => {
            s.mark("callback:customer-missed");
            let sorry = say("The customer did not answer.");
            let _ = s.play_items(&[sorry], false).await;
            "customer-missed"
        }
        Err(_) => {
            // The agent hung up before the customer answered: the place stays.
            s.mark("callback:agent-left");
            end(&node, &mut s, "callback-agent-left", 0);
            return node.queues.callback_retry(&q.name, &cb.id);
        }
    };
    finish(&node, &q, &cb, state).await;
    let wrap_up_s = node.config.group(&q.group).map_or(0, |g| g.wrap_up_s);
    end(
        &node,
        &mut s,
        &format!("callback-{state}"),
        wrap_up_s as i64 * 1000,
    );
}

/// The window passed: call the customer, apologise, take a message.
async fn expire(node: Arc<Node>, q: QueueConfig, cb: PendingCallback) {
    let Some(mut s) = placed_call(&node, &q, &cb) else {
        return node.queues.callback_retry(&q.name, &cb.id);
    };
    s.mark(&format!("callback:{}:expired", q.name));
    let caller_id = q.number.clone().unwrap_or_else(|| q.name.clone());
    let customer = customer_target(&node, &cb.number);
    let out = s
        .dial_targets(&[customer], CUSTOMER_RING, Some(caller_id))
        .await;
    let reached = matches!(out, Ok(ref o) if o.status == DialStatus::Completed);
    if reached {
        node.store.call_answered(&s.call_id);
        let sorry = say("We are sorry: no agent was free to call you back in time. \
             Please leave a message after the tone, and we will get back to you.");
        if s.play_items(&[sorry], false).await.is_ok() {
            s = take_message(&node, &q, s).await;
        }
    }
    let state = if reached {
        "expired-message"
    } else {
        "expired-unreached"
    };
    finish(&node, &q, &cb, state).await;
    end(&node, &mut s, &format!("callback-{state}"), 0);
}

/// Hands the customer to the queue's voicemail plugin (mailbox: the queue).
async fn take_message(node: &Arc<Node>, q: &QueueConfig, mut s: CallSession) -> CallSession {
    let Some(vm) = node.plugins.get(&q.callback_voicemail) else {
        tracing::warn!(queue = %q.name, "callback voicemail plugin {:?} is not loaded", q.callback_voicemail);
        return s;
    };
    let info = CallInfo {
        arguments: Some(serde_json::json!({ "mailbox": q.name }).to_string()),
        config: node.plugin_config_json(&q.callback_voicemail),
        ..s.info.clone()
    };
    s.plugin = q.callback_voicemail.clone();
    s.mark(&format!("hand-over:{}", q.callback_voicemail));
    let (_, s) = node.plugins.run(&vm, s, info).await;
    s
}

/// A session for a call the node places about `cb`, with its record.
fn placed_call(node: &Arc<Node>, q: &QueueConfig, cb: &PendingCallback) -> Option<CallSession> {
    let sip = node.sip_tx.get()?.clone();
    let call_id = format!("{}.{:08x}@hookline", cb.id, rand::random::<u32>());
    node.store.call_started(&call_id, &cb.number, &q.name, None);
    let (events_tx, events) = super::events::channel();
    let info = CallInfo {
        call_id: call_id.clone(),
        caller: cb.number.clone(),
        callee: q.name.clone(),
        caller_name: None,
        domain: String::new(),
        config: "{}".into(),
        arguments: None,
    };
    let session = CallSession::new(SessionParts {
        call_id,
        plugin: "callback".into(),
        // No leg yet: outbound legs are placed beside this id, and the
        // first one answered becomes the session's leg.
        leg: node.media.new_leg_id(None),
        media: node.media.clone(),
        prompts: node.prompts.clone(),
        sip,
        events,
        events_tx,
        node: node.clone(),
        caller: cb.number.clone(),
        codec: crate::codec::Format::PCMU,
        store: node.store.clone(),
        answer_sdp: String::new(),
        info,
        language: node.config.prompts.language.clone(),
    });
    Some(session.originate())
}

/// The customer: their extension if they are one, else their number out
/// through the trunks.
fn customer_target(node: &Node, number: &str) -> Target {
    if node.config.extensions.iter().any(|e| e.user == number) {
        Target::Extension(number.to_string())
    } else {
        Target::Number(number.to_string())
    }
}

/// The callback is over: stored as `state`, its place freed.
async fn finish(node: &Arc<Node>, q: &QueueConfig, cb: &PendingCallback, state: &str) {
    let store = node.callbacks.clone();
    let (id, st) = (cb.id.clone(), state.to_string());
    match tokio::task::spawn_blocking(move || store.finish(&id, &st)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(callback = %cb.id, "storing its end: {e}"),
        Err(e) => tracing::warn!(callback = %cb.id, "storing its end: {e}"),
    }
    node.queues.callback_done(&q.name, &cb.id);
}

/// Hangs up and frees the adopted leg, and closes the session's record.
fn end(node: &Node, s: &mut CallSession, cause: &str, wrap_up_ms: i64) {
    if let Some(a) = s.adopted.take() {
        // Ended already: the far end hung up, or a plugin did (and sent the BYE).
        let already_ended = s.ended.is_some();
        if !already_ended {
            node.send_sip(SipCommand::Hangup {
                call_id: a.call_id.clone(),
            });
        }
        node.media.remove_leg(s.leg);
        node.ports.release(a.port);
        node.send_sip(SipCommand::Finished {
            call_id: a.call_id.clone(),
        });
        if a.reserved {
            node.presence
                .free_after(&a.label, crate::store::now_ms(), wrap_up_ms);
        }
        let leg_cause = if already_ended {
            "ended"
        } else {
            "node-hangup"
        };
        node.store
            .call_ended(&a.call_id, leg_cause, vec![format!("codec:{}", a.codec)]);
    }
    node.store
        .call_ended(&s.call_id, cause, std::mem::take(&mut s.path));
}
